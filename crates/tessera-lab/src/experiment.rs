//! The experiments `tessera lab --experiment` runs, each a claim of the
//! article measured.

use clap::ValueEnum;
use serde::Serialize;

/// One experiment (or `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Experiment {
    /// A node SIGKILLed and restarted: who stays logged in.
    NodeLoss,
    /// Two nodes, a third added, one removed gracefully: who stays logged in.
    ScaleOut,
    /// Logout and disabled accounts: how long a credential keeps working.
    Logout,
    /// A role changed by an admin: how long until every node applies it.
    Permissions,
    /// What checking a credential costs a node, per mechanism.
    VerifyCost,
    /// Every experiment above.
    All,
}

impl Experiment {
    /// Every experiment, in the order `all` runs them.
    pub const EACH: [Self; 5] = [
        Self::NodeLoss,
        Self::ScaleOut,
        Self::Logout,
        Self::Permissions,
        Self::VerifyCost,
    ];

    /// Its name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Self::NodeLoss => "node-loss",
            Self::ScaleOut => "scale-out",
            Self::Logout => "logout",
            Self::Permissions => "permissions",
            Self::VerifyCost => "verify-cost",
            Self::All => "all",
        }
    }

    /// The experiments `selected` names, `all` expanded, in run order.
    pub fn expand(selected: &[Self]) -> Vec<Self> {
        Self::EACH
            .into_iter()
            .filter(|e| selected.contains(e) || selected.contains(&Self::All))
            .collect()
    }
}
