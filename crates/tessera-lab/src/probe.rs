//! What the `logout` and `permissions` experiments share: logging users in
//! node by node (no balancer: each request goes where the lab says), the
//! administrator, and a third-party verifier that knows only the JWKS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::accounts;
use crate::architecture::CredentialKind;
use crate::client::{Check, Credential, Gateway, Identity, Outcome};

/// How long a login may keep failing (503 while the hash queue is full).
const PATIENCE: Duration = Duration::from_secs(60);

/// One client per node, for one kind of credential.
pub struct Nodes {
    /// A gateway per node, node 1 first.
    pub gateways: Vec<Arc<Gateway>>,
}

impl Nodes {
    /// Clients for `addrs`.
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be built.
    pub fn new(addrs: &[std::net::SocketAddr], kind: CredentialKind) -> anyhow::Result<Self> {
        Ok(Self {
            gateways: addrs
                .iter()
                .map(|addr| Gateway::new(*addr, kind).map(Arc::new))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// The gateway of node `index` (wrapping around).
    pub fn node(&self, index: usize) -> &Gateway {
        &self.gateways[index % self.gateways.len()]
    }

    /// `GET /profile` on every node at once, in node order.
    pub async fn check_all(&self, credential: &Credential) -> Vec<Check> {
        let mut set = tokio::task::JoinSet::new();
        for (index, gateway) in self.gateways.iter().enumerate() {
            let gateway = Arc::clone(gateway);
            let credential = credential.clone();
            set.spawn(async move { (index, gateway.check(&credential).await) });
        }
        let mut checks = vec![Check::Failed; self.gateways.len()];
        while let Some(Ok((index, check))) = set.join_next().await {
            checks[index] = check;
        }
        checks
    }

    /// Logs users `0..users` in at once, each at "their" node (where nginx's
    /// sticky routing would have sent them): `(user, identity, user id)`,
    /// in the order the logins finished.
    ///
    /// # Errors
    ///
    /// A login or the user-id lookup failed.
    pub async fn log_in_everyone(
        self: &Arc<Self>,
        users: usize,
    ) -> anyhow::Result<Vec<(usize, Identity, String)>> {
        let mut logins = tokio::task::JoinSet::new();
        for user in 0..users {
            let nodes = Arc::clone(self);
            logins.spawn(async move {
                let identity = log_in(nodes.node(user), accounts::email(user)).await?;
                let id = user_id(nodes.node(user), &identity.credential()).await?;
                anyhow::Ok((user, identity, id))
            });
        }
        let mut identities = Vec::with_capacity(users);
        while let Some(joined) = logins.join_next().await {
            identities.push(joined.context("a login task failed")??);
        }
        Ok(identities)
    }
}

/// Logs `email` in at `gateway`, retrying while the node is busy.
///
/// # Errors
///
/// Refused credentials, or no success within a minute.
pub async fn log_in(gateway: &Gateway, email: String) -> anyhow::Result<Identity> {
    let mut identity = Identity::new(email);
    let deadline = Instant::now() + PATIENCE;
    loop {
        match gateway.log_in(&mut identity).await {
            Outcome::Success { .. } => return Ok(identity),
            Outcome::Unauthorized => bail!("the node refused the lab's credentials"),
            Outcome::Failure { retry_after } => {
                if Instant::now() > deadline {
                    bail!("a login did not succeed within {PATIENCE:?}");
                }
                tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(20))).await;
            }
        }
    }
}

/// The administrator, logged in with a bearer token at `gateway`.
///
/// # Errors
///
/// As [`log_in`].
pub async fn admin(gateway: &Gateway) -> anyhow::Result<Credential> {
    Ok(log_in(gateway, accounts::ADMIN_EMAIL.to_owned())
        .await?
        .credential())
}

/// The user's id, as node `gateway` reports it.
///
/// # Errors
///
/// The node did not accept the credential.
pub async fn user_id(gateway: &Gateway, credential: &Credential) -> anyhow::Result<String> {
    match gateway.check(credential).await {
        Check::Accepted { id, .. } => Ok(id),
        other => bail!("a fresh credential was not accepted: {other:?}"),
    }
}

/// A service that trusts tessera's access tokens by their signature alone:
/// the public keys from `/.well-known/jwks.json`, the issuer, audience and
/// expiry checked with no leeway, and no revocation list.
pub struct JwksVerifier {
    keys: Vec<(Option<String>, tessera_token::VerifyingKey)>,
    validation: tessera_token::Validation,
}

impl JwksVerifier {
    /// Fetches the JWKS from `gateway`.
    ///
    /// # Errors
    ///
    /// No JWKS, or no usable key in it (HS256 publishes none).
    pub async fn fetch(gateway: &Gateway) -> anyhow::Result<Self> {
        let jwks = gateway.jwks().await?;
        let keys: Vec<_> = jwks
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone(), jwk.verifying_key().ok()?)))
            .collect();
        if keys.is_empty() {
            bail!("the JWKS holds no public key (HS256 publishes none)");
        }
        Ok(Self {
            keys,
            validation: tessera_token::Validation {
                issuer: "tessera".to_owned(),
                audience: "tessera".to_owned(),
                leeway_secs: 0,
            },
        })
    }

    /// Whether the token passes: signature, issuer, audience, expiry.
    pub fn accepts(&self, token: &str) -> bool {
        let Ok(unverified) = tessera_token::jws::parse_compact(token) else {
            return false;
        };
        let kid = unverified.header.kid.clone();
        let Some((_, key)) = self.keys.iter().find(|(k, _)| kid.is_none() || *k == kid) else {
            return false;
        };
        let Ok(payload) = unverified.verify(key) else {
            return false;
        };
        let Ok(claims) = tessera_token::AccessClaims::from_payload(&payload) else {
            return false;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        claims.validate(&self.validation, now).is_ok()
    }
}

/// Durations in ms: median, 99th percentile and maximum (nearest rank).
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let n = sorted.len();
        sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
    };
    (rank(0.5), rank(0.99), sorted[sorted.len() - 1])
}

/// The cluster a probe experiment (`logout`, `permissions`) runs one
/// mechanism on: its nodes with access tokens living the plan's
/// `access_ttl`, the users' and the admin's (bearer) views of them, and the
/// admin's credential.
pub struct ProbeCluster {
    /// The nodes (and Redis when the mechanism needs it), stopped on drop.
    pub cluster: crate::cluster::Cluster,
    /// The nodes as the mechanism's users call them.
    pub nodes: Arc<Nodes>,
    /// The nodes as the admin (bearer token) calls them.
    pub admin_nodes: Arc<Nodes>,
    /// The admin's credential, logged in at node 1.
    pub admin: Arc<Credential>,
}

impl ProbeCluster {
    /// Starts `experiment`'s cluster for `mechanism`, with the plan's
    /// probe users, and logs the admin in.
    ///
    /// # Errors
    ///
    /// The cluster could not start or the admin could not log in.
    pub async fn start(
        lab: &crate::Lab<'_>,
        mechanism: crate::mechanism::Mechanism,
        experiment: &str,
    ) -> anyhow::Result<Self> {
        let plan = lab.plan;
        let mut env = mechanism.env(lab.redis_for(mechanism.needs_redis())?, true);
        env.push((
            "TESSERA_JWT_ACCESS_TTL".to_owned(),
            plan.access_ttl.as_secs().to_string(),
        ));
        let cluster = crate::cluster::Cluster::start(lab.cluster(
            &format!("{experiment}-{}", mechanism.name()),
            plan.probe_users,
            env,
            plan.nodes,
            None,
        ))
        .await?;
        let nodes = Arc::new(Nodes::new(&cluster.addrs(), mechanism.credential())?);
        let admin_nodes = Nodes::new(&cluster.addrs(), CredentialKind::Bearer)?;
        let admin = Arc::new(admin(admin_nodes.node(0)).await?);
        Ok(Self {
            cluster,
            nodes,
            admin_nodes: Arc::new(admin_nodes),
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(summary(&values), (50.0, 99.0, 100.0));
        assert_eq!(summary(&[]), (0.0, 0.0, 0.0));
    }
}
