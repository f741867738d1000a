//! Fills a tessera SQLite database with synthetic live sessions, for the
//! scale benchmark (`bench/profile.sh --scale`).
//!
//! Usage: `seed_sessions DATABASE COUNT`

use std::time::Duration;

use tessera_core::{Email, NewUser, PasswordHash, Role, SessionMeta, SessionPolicy, Timestamp};
use tessera_store::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: seed_sessions DATABASE COUNT");
        std::process::exit(2);
    };
    let count: usize = count.parse()?;
    let store = SqliteStore::open(&path, SqliteOptions::default())?;
    let policy = SessionPolicy::new(Duration::from_secs(86_400), Duration::from_secs(86_400))?;
    let now = Timestamp::now();
    let batch = 50_000;
    let mut done = 0;
    while done < count {
        let n = batch.min(count - done);
        let meta = SessionMeta {
            ip: Some("203.0.113.10".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) seed".into()),
        };
        let mut sessions = Vec::with_capacity(n);
        // Ten sessions per synthetic user, like users with a few devices.
        for first in (0..n).step_by(10) {
            let user = NewUser {
                email: Email::parse(&format!("seed{}@example.com", (done + first) / 10))?,
                roles: vec![Role::parse("member")?],
                password_hash: PasswordHash::from_trusted(String::new()),
                email_verified: true,
            }
            .into_user(now);
            for _ in first..(first + 10).min(n) {
                sessions.push(policy.start(&user, meta.clone(), now).1);
            }
        }
        store.insert_sessions(sessions).await?;
        done += n;
    }
    println!("seeded {done} sessions into {path}");
    Ok(())
}
