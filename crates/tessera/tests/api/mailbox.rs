//! Reading what the server mailed: the `.eml` files of `mail = file` under
//! the data directory (the same messages an SMTP relay would get).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::helpers::{DataDir, Options, Server};

/// Options for a server whose mail lands in its data directory, with links
/// under `https://auth.example.test` and open sign-up.
pub fn mailing() -> Options {
    Options::default()
        .env("TESSERA_MAIL", "file")
        .env("TESSERA_MAIL_FROM", "tessera@auth.example.test")
        .env("TESSERA_PUBLIC_URL", "https://auth.example.test")
        .env("TESSERA_REGISTRATION", "open")
}

/// One message as received, transfer encoding undone.
#[derive(Debug, Clone)]
pub struct Message {
    pub raw: String,
}

impl Message {
    /// Whether `address` is among its recipients.
    pub fn is_to(&self, address: &str) -> bool {
        self.header("to")
            .is_some_and(|to| to.to_lowercase().contains(&address.to_lowercase()))
    }

    /// A header's value (the first of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or(&self.raw);
        let prefix = format!("{}:", name.to_lowercase());
        head.lines()
            .find(|line| line.to_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
    }

    /// The ticket of the first link in the message, and the link.
    pub fn link(&self) -> Option<(String, String)> {
        let start = self.raw.find("https://auth.example.test/")?;
        let rest = &self.raw[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .unwrap_or(rest.len());
        let link = rest[..end].to_owned();
        let token = link.split("token=").nth(1)?.chars().take(43).collect();
        Some((link, token))
    }
}

/// Undoes quoted-printable soft breaks and the escaped `=` (links are
/// longer than a mail line).
fn decode(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        .replace("=3d", "=")
}

/// The messages written under a data directory's `mail/`.
pub struct Mailbox {
    dir: PathBuf,
}

impl Mailbox {
    pub fn of(data: &DataDir) -> Self {
        Self::at(data.path().join("mail"))
    }

    /// The messages written to `dir` (an SMTP sink's).
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Every message so far, oldest first (by file name).
    pub fn all(&self) -> Vec<Message> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort_by_key(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, p.clone()))
        });
        paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|raw| Message { raw: decode(&raw) })
            .collect()
    }

    /// The messages to `address`.
    pub fn to(&self, address: &str) -> Vec<Message> {
        self.all()
            .into_iter()
            .filter(|m| m.is_to(address))
            .collect()
    }

    /// Waits until `address` has received `count` messages; returns them.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let messages = self.to(address);
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{address} got {} of {count} messages: {:#?}",
                messages.len(),
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ticket of the newest message to `address`, waiting for the
    /// `count`th.
    pub async fn token(&self, address: &str, count: usize) -> String {
        let messages = self.wait_for(address, count).await;
        messages[count - 1]
            .link()
            .unwrap_or_else(|| panic!("no link in {:?}", messages[count - 1]))
            .1
    }
}

/// The id of the one user whose address starts with `prefix`, as the admin
/// API lists it (`admin`: an admin's session cookie).
pub async fn user_id(server: &Server, admin: &str, prefix: &str) -> String {
    let users: serde_json::Value = server
        .get(
            &format!("/admin/v1/users?email_prefix={prefix}"),
            Some(admin),
        )
        .await
        .json()
        .await
        .unwrap();
    users["users"][0]["id"]
        .as_str()
        .expect("one user with that prefix")
        .to_owned()
}
