//! `breached_password_url`: the k-anonymity range API of Have I Been Pwned
//! (or an offline mirror of it) as the library's [`BreachedPasswords`].

use std::time::Duration;

use anyhow::bail;
use async_trait::async_trait;
use tessera_axum::passwords::{BreachCheckUnavailable, BreachedPasswords};

/// How long one range request may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// `GET {base}/range/{prefix}` over HTTP.
#[derive(Debug)]
pub struct RangeApi {
    client: reqwest::Client,
    base: String,
}

impl RangeApi {
    /// A client for the range API at `url` (e.g. `http://hibp-mirror:8000`).
    ///
    /// # Errors
    ///
    /// A URL that is not `http://` (this build carries no TLS client: put a
    /// mirror or a local TLS proxy in front of the public service).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!(
                "breached_password_url must be an http:// URL (a mirror or a local proxy of the \
                 range API): this build has no TLS client"
            );
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("tessera")
            .build()?;
        Ok(Self {
            client,
            base: base.to_owned(),
        })
    }
}

#[async_trait]
impl BreachedPasswords for RangeApi {
    async fn range(&self, prefix: &str) -> Result<String, BreachCheckUnavailable> {
        let unavailable = |e: reqwest::Error| BreachCheckUnavailable(e.without_url().to_string());
        let response = self
            .client
            .get(format!("{}/range/{prefix}", self.base))
            // The service pads answers so that their size tells nothing.
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(BreachCheckUnavailable(format!(
                "the service answered {}",
                response.status()
            )));
        }
        response.text().await.map_err(unavailable)
    }
}
