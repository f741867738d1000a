//! A set of tessera nodes sharing a data directory (their users) and the
//! settings of one architecture or mechanism, optionally behind nginx.
//! What every experiment starts; everything stops when it is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::accounts;
use crate::architecture::Routing;
use crate::balancer::Balancer;
use crate::node::{Node, NodeSpec};

/// What a cluster needs.
pub struct ClusterSpec<'a> {
    /// The `tessera` binary.
    pub binary: &'a Path,
    /// A fresh directory for this cluster.
    pub work_dir: PathBuf,
    /// Simulated users to import (plus the administrator).
    pub users: usize,
    /// Their password hash.
    pub password_hash: &'a str,
    /// Secrets the nodes share.
    pub secrets: &'a Secrets,
    /// The architecture's or mechanism's settings.
    pub env: Vec<(String, String)>,
    /// Nodes to start.
    pub nodes: usize,
    /// nginx in front, if any.
    pub routing: Option<Routing>,
}

/// Keys every node of a lab run shares.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The HS256 secret.
    pub jwt_secret: String,
    /// The sealed-cookie key (32 bytes, base64url).
    pub cookie_key: String,
}

impl Secrets {
    /// Fresh random secrets.
    pub fn generate() -> Self {
        use base64::Engine;
        let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| u.as_bytes().to_vec())
            .collect();
        Self {
            jwt_secret: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            cookie_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        }
    }
}

/// Running nodes (and nginx).
pub struct Cluster {
    /// The nodes, node 1 first.
    pub nodes: Vec<Node>,
    /// nginx, if asked for.
    pub balancer: Option<Balancer>,
    spec: NodeSpec,
    routing: Option<Routing>,
    prefix: PathBuf,
}

impl Cluster {
    /// Imports the users, starts the nodes one after the other (the first
    /// writes the signing keys the others read), then nginx.
    ///
    /// # Errors
    ///
    /// The import, a node or nginx failed.
    pub async fn start(spec: ClusterSpec<'_>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&spec.work_dir)
            .with_context(|| format!("cannot create {}", spec.work_dir.display()))?;
        let data_dir = spec.work_dir.join("data");
        accounts::import(
            spec.binary,
            &spec.work_dir,
            &data_dir,
            spec.users,
            spec.password_hash,
        )
        .await?;
        let mut env = common_env(spec.users, spec.secrets, &spec.work_dir);
        let asymmetric = spec
            .env
            .iter()
            .any(|(k, v)| k == "TESSERA_JWT_ALGORITHM" && v != "HS256");
        if !asymmetric {
            // Any node verifies any node's access tokens (asymmetric keys
            // are generated into the shared data directory by node 1).
            env.push((
                "TESSERA_JWT_SECRET".to_owned(),
                spec.secrets.jwt_secret.clone(),
            ));
        }
        env.extend(spec.env);
        let node_spec = NodeSpec {
            binary: spec.binary.to_owned(),
            data_dir,
            env,
        };
        let mut nodes = Vec::with_capacity(spec.nodes);
        for index in 0..spec.nodes {
            nodes.push(Node::start(index, node_spec.clone()).await?);
        }
        let prefix = spec.work_dir.join("nginx");
        let balancer = match spec.routing {
            Some(routing) => {
                let addrs: Vec<SocketAddr> = nodes.iter().map(Node::addr).collect();
                Some(Balancer::start(routing, &prefix, &addrs)?)
            }
            None => None,
        };
        Ok(Self {
            nodes,
            balancer,
            spec: node_spec,
            routing: spec.routing,
            prefix,
        })
    }

    /// The nodes' addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// nginx's address (panics without nginx: a programming error).
    pub fn entrance(&self) -> SocketAddr {
        self.balancer
            .as_ref()
            .expect("a cluster behind nginx")
            .addr()
    }

    /// Starts one more node (not yet behind nginx).
    ///
    /// # Errors
    ///
    /// As [`Node::start`].
    pub async fn add_node(&mut self) -> anyhow::Result<SocketAddr> {
        let node = Node::start(self.nodes.len(), self.spec.clone()).await?;
        let addr = node.addr();
        self.nodes.push(node);
        Ok(addr)
    }

    /// Points nginx at `nodes` (a reload: old workers finish their requests).
    ///
    /// # Errors
    ///
    /// nginx refused the configuration.
    pub async fn route_to(&mut self, nodes: &[SocketAddr]) -> anyhow::Result<()> {
        let (Some(balancer), Some(routing)) = (&self.balancer, self.routing) else {
            anyhow::bail!("this cluster has no nginx");
        };
        balancer.reload(routing, &self.prefix, nodes).await
    }
}

/// The settings of every node of every experiment.
fn common_env(users: usize, secrets: &Secrets, work_dir: &Path) -> Vec<(String, String)> {
    let generous = (users * 100).max(1000).to_string();
    let places = (users + 8).max(32).to_string();
    // Each cluster its own keys in a shared Redis.
    let prefix = format!(
        "lab-{}",
        work_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    [
        // Any node opens any node's sealed cookies.
        ("TESSERA_SESSION_COOKIE_KEY", secrets.cookie_key.clone()),
        ("TESSERA_REDIS_PREFIX", prefix),
        ("TESSERA_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        // Every user comes from 127.0.0.1, and the per-IP bucket holds a
        // token for each login in progress: room for all of them.
        ("TESSERA_LOGIN_IP_BURST", generous.clone()),
        ("TESSERA_LOGIN_IP_PER_MINUTE", generous),
        // Every user may be logging in at once (after a kill).
        ("TESSERA_HASH_QUEUE", places.clone()),
        ("TESSERA_HASH_PER_CLIENT", places),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into()
}
