//! `--report FILE.html`: one self-contained page (inline SVG and CSS, no
//! script, nothing loaded from anywhere) that reproduces the article's two
//! tables — stateful vs stateless, sessions vs JWT — with each cell backed
//! by a figure this run measured and a one-line verdict, then every
//! experiment's table and chart, the machine, the versions and the exact
//! command.

use std::fmt::Write;

use crate::chart::{Figure, escape};
use crate::report::LabReport;

/// Whether a measurement bears a claim out.
enum Verdict {
    /// As the article says.
    Confirmed(String),
    /// True with a condition, or only in part.
    Qualified(String),
    /// The experiment that would say was not run.
    NotMeasured(&'static str),
}

/// One row of a trade-off table: the aspect, a cell per side, a verdict.
struct Claim {
    aspect: &'static str,
    article: &'static str,
    left: String,
    right: String,
    verdict: Verdict,
}

/// The page.
pub fn page(report: &LabReport, figures: &[Figure]) -> String {
    let mut out = String::new();
    out.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>tessera lab: stateful vs stateless, sessions vs JWT, measured</title>\n<style>\n",
    );
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    let _ = writeln!(
        out,
        "<h1>tessera lab: the trade-offs, measured</h1>\n<p class=\"lead\">Every cell below is \
         a figure this run measured on the machine described at the end, with a verdict on the \
         article's claim: <span class=\"confirmed\">confirmed</span> or \
         <span class=\"qualified\">qualified</span> (true with a condition, said why).</p>"
    );
    if report.debug_build {
        out.push_str(
            "<p class=\"warning\">Debug build: absolute figures are slow; compare rows only.</p>\n",
        );
    }
    table(
        &mut out,
        "stateful-vs-stateless",
        "Stateful vs stateless",
        (
            "Stateful (sessions in each node's memory, sticky routing)",
            "Stateless (shared Redis, or signed tokens)",
        ),
        &stateful_vs_stateless(report),
    );
    table(
        &mut out,
        "sessions-vs-jwt",
        "Sessions vs JWT",
        ("Server-side sessions", "JWT access tokens"),
        &sessions_vs_jwt(report),
    );

    out.push_str("<h2>The experiments</h2>\n");
    let sections = [
        report.node_loss.as_ref().map(|e| e.table(&report.plan)),
        report
            .scale_out
            .as_ref()
            .map(crate::scale_out::ScaleOut::table),
        report.logout.as_ref().map(crate::logout::Logout::table),
        report
            .permissions
            .as_ref()
            .map(crate::permissions::Permissions::table),
        report
            .verify_cost
            .as_ref()
            .map(crate::verify_cost::VerifyCost::table),
    ];
    for (text, figure) in sections.into_iter().flatten().zip(figures) {
        let _ = writeln!(
            out,
            "<section class=\"experiment\">\n<h3>{}</h3>\n<figure class=\"chart\">{}</figure>\n<pre>{}</pre>\n</section>",
            escape(&figure.title),
            figure.svg(),
            escape(&text)
        );
    }
    for failure in &report.failed {
        let _ = writeln!(
            out,
            "<p class=\"warning\">{} / {} failed: {}</p>",
            escape(failure.experiment),
            escape(&failure.architecture),
            escape(&failure.reason)
        );
    }

    let machine = &report.machine;
    let versions = &report.versions;
    let _ = writeln!(
        out,
        "<h2>Where and how it ran</h2>\n<table class=\"facts\">\n\
         <tr><th>command</th><td><code>{}</code></td></tr>\n\
         <tr><th>wall time</th><td>{:.0} s</td></tr>\n\
         <tr><th>CPU</th><td>{} ({} cores)</td></tr>\n\
         <tr><th>kernel</th><td>{}</td></tr>\n\
         <tr><th>load average</th><td>{} at the start, {} at the end (1, 5, 15 min)</td></tr>\n\
         <tr><th>tessera</th><td>{} ({} build)</td></tr>\n\
         <tr><th>nginx</th><td>{}</td></tr>\n\
         <tr><th>Redis</th><td>{}</td></tr>\n</table>",
        escape(&report.command),
        report.wall_s,
        escape(&machine.cpu),
        machine.cores,
        escape(&machine.kernel),
        escape(&machine.load_at_start),
        escape(&machine.load_at_end),
        escape(&versions.tessera),
        versions.build,
        escape(&versions.nginx),
        escape(&versions.redis),
    );
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

const STYLE: &str = "body{font-family:'DejaVu Sans',sans-serif;margin:0;background:#fafafa;color:#222}\
main{max-width:1000px;margin:0 auto;padding:1em 1.5em}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;margin:1em 0;background:white}\
th,td{border:1px solid #ccc;padding:.4em .6em;vertical-align:top;text-align:left;font-size:.92em}\
th{background:#f0f0f0}\
.verdict{font-size:.9em}.confirmed{color:#1a7f37;font-weight:bold}.qualified{color:#b35900;font-weight:bold}\
.unmeasured{color:#777;font-weight:bold}.claim{color:#555;font-style:italic}\
.warning{background:#fff4e5;border:1px solid #f0b46c;padding:.5em}\
figure.chart{margin:1em 0;background:white;border:1px solid #ddd;overflow-x:auto}\
figure.chart svg{display:block;max-width:100%;height:auto}\
pre{background:white;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:.8em}\
.lead{font-size:1.05em}code{font-size:.9em}";

fn table(out: &mut String, id: &str, title: &str, sides: (&str, &str), claims: &[Claim]) {
    let _ = writeln!(
        out,
        "<h2 id=\"{id}\">{}</h2>\n<table class=\"tradeoffs\">\n<tr><th>Aspect</th><th>{}</th><th>{}</th><th>Verdict</th></tr>",
        escape(title),
        escape(sides.0),
        escape(sides.1)
    );
    for claim in claims {
        let (class, word, why) = match &claim.verdict {
            Verdict::Confirmed(why) => ("confirmed", "confirmed", why.clone()),
            Verdict::Qualified(why) => ("qualified", "qualified", why.clone()),
            Verdict::NotMeasured(experiment) => (
                "unmeasured",
                "not measured",
                format!("run with --experiment {experiment}"),
            ),
        };
        let _ = writeln!(
            out,
            "<tr><th>{}<br><span class=\"claim\">{}</span></th><td>{}</td><td>{}</td><td class=\"verdict\"><span class=\"{class}\">{word}</span>: {}</td></tr>",
            escape(claim.aspect),
            escape(claim.article),
            escape(&claim.left),
            escape(&claim.right),
            escape(&why)
        );
    }
    out.push_str("</table>\n");
}

fn ms(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1} s", value / 1000.0)
    } else {
        format!("{value:.0} ms")
    }
}

fn stateful_vs_stateless(report: &LabReport) -> Vec<Claim> {
    let mut claims = Vec::new();

    // Node loss.
    claims.push(match &report.node_loss {
        Some(e) if !e.rows.is_empty() => {
            let row = |name: &str| e.rows.iter().find(|r| r.architecture == name);
            let stateful = row("stateful");
            let stateless: Vec<_> = e
                .rows
                .iter()
                .filter(|r| r.architecture != "stateful")
                .collect();
            let left = stateful.map_or("not run".to_owned(), |r| {
                format!(
                    "node 1 SIGKILLed: {} of {} users sent back to the login ({} sessions it held; {} refused in all, restart included)",
                    r.lost_at_kill, r.users, r.expected_lost, r.sessions_lost
                )
            });
            let right = stateless
                .iter()
                .map(|r| format!("{}: {} of {} users lost", r.architecture, r.sessions_lost, r.users))
                .collect::<Vec<_>>()
                .join("; ");
            let verdict = match stateful {
                Some(s) if s.sessions_lost > 0 && stateless.iter().all(|r| r.sessions_lost == 0) => {
                    Verdict::Confirmed(format!(
                        "the dead node's {} sessions died with it; no stateless user noticed",
                        s.expected_lost
                    ))
                }
                _ => Verdict::Qualified(
                    "the run did not separate the architectures (see the node-loss table)".to_owned(),
                ),
            };
            Claim {
                aspect: "Server failure",
                article: "a stateful server takes its sessions down with it",
                left,
                right,
                verdict,
            }
        }
        _ => unmeasured("Server failure", "a stateful server takes its sessions down with it", "node-loss"),
    });

    // Adding and removing servers.
    claims.push(match &report.scale_out {
        Some(e) if !e.rows.is_empty() => {
            let stateful = e.rows.iter().find(|r| r.architecture == "stateful");
            let stateless: Vec<_> = e.rows.iter().filter(|r| r.architecture != "stateful").collect();
            let left = stateful.map_or("not run".to_owned(), |r| {
                format!(
                    "adding node 3 sent {} of {} users back to the login, removing node 1 (gracefully) {} more",
                    r.lost_at_join, r.users, r.lost_at_leave
                )
            });
            let right = stateless
                .iter()
                .map(|r| {
                    format!(
                        "{}: {} lost; node 3 took {:.0} of {:.0} req/s",
                        r.architecture,
                        r.sessions_lost,
                        r.nodes.get(2).map_or(0.0, |n| n.rps[1]),
                        r.rps[1]
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let verdict = match stateful {
                Some(s)
                    if s.lost_at_join + s.lost_at_leave > 0
                        && stateless.iter().all(|r| r.sessions_lost == 0) =>
                {
                    Verdict::Confirmed(
                        "with sticky routing every change of the node set moves some clients away from their sessions; stateless nodes come and go unnoticed".to_owned(),
                    )
                }
                _ => Verdict::Qualified(
                    "the run did not separate the architectures (see the scale-out table)".to_owned(),
                ),
            };
            Claim {
                aspect: "Adding or removing servers",
                article: "complex with state on the servers; trivial without",
                left,
                right,
                verdict,
            }
        }
        _ => unmeasured("Adding or removing servers", "complex with state on the servers; trivial without", "scale-out"),
    });

    // Load balancing.
    claims.push(match &report.scale_out {
        Some(e) if e.rows.len() > 1 => {
            let spread = |r: &crate::scale_out::Row| {
                let rates: Vec<f64> = r.nodes.iter().take(2).map(|n| n.rps[0]).collect();
                let max = rates.iter().copied().fold(0.0, f64::max);
                let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
                if max > 0.0 { min / max } else { 0.0 }
            };
            let describe = |r: &crate::scale_out::Row| {
                format!(
                    "{}: node 1 {:.0} req/s, node 2 {:.0} req/s (balance {:.0}%)",
                    r.architecture,
                    r.nodes.first().map_or(0.0, |n| n.rps[0]),
                    r.nodes.get(1).map_or(0.0, |n| n.rps[0]),
                    spread(r) * 100.0
                )
            };
            let stateful = e.rows.iter().find(|r| r.architecture == "stateful");
            let stateless: Vec<_> = e.rows.iter().filter(|r| r.architecture != "stateful").collect();
            let worst_stateless = stateless.iter().map(|r| spread(r)).fold(1.0, f64::min);
            let verdict = match stateful {
                Some(s) if spread(s) + 0.1 < worst_stateless => Verdict::Confirmed(format!(
                    "sticky routing balances clients, not requests: {:.0}% vs {:.0}%",
                    spread(s) * 100.0,
                    worst_stateless * 100.0
                )),
                Some(_) => Verdict::Qualified(
                    "with many similar clients consistent hashing spread the load about as evenly; the cost of stickiness shows when nodes change".to_owned(),
                ),
                None => Verdict::NotMeasured("scale-out"),
            };
            Claim {
                aspect: "Load balancing",
                article: "sticky sessions vs any server",
                left: stateful.map_or("not run".to_owned(), describe),
                right: stateless.iter().map(|r| describe(r)).collect::<Vec<_>>().join("; "),
                verdict,
            }
        }
        _ => unmeasured("Load balancing", "sticky sessions vs any server", "scale-out"),
    });

    // Performance.
    claims.push(match (&report.node_loss, &report.verify_cost) {
        (Some(e), cost) if !e.rows.is_empty() => {
            let stateful = e.rows.iter().find(|r| r.architecture == "stateful");
            let stateless: Vec<_> = e.rows.iter().filter(|r| r.architecture != "stateful").collect();
            let describe = |r: &crate::node_loss::Row| {
                format!(
                    "{}: {:.0} req/s, p50 {}",
                    r.architecture,
                    r.throughput,
                    crate::report::millis(r.p50_ms)
                )
            };
            let mut right = stateless.iter().map(|r| describe(r)).collect::<Vec<_>>().join("; ");
            if let Some(cost) = cost
                && let Some(redis) = cost.rows.iter().find(|r| r.mechanism == "session-redis")
            {
                let _ = write!(
                    right,
                    "; a Redis session costs the node {:.0} µs CPU per request",
                    redis.profile_cpu_us
                );
            }
            let best_stateless = stateless.iter().map(|r| r.throughput).fold(0.0, f64::max);
            let verdict = match stateful {
                Some(s) if s.throughput > best_stateless * 1.05 => Verdict::Confirmed(format!(
                    "a memory lookup beats a network hop: {:.0} vs {:.0} req/s",
                    s.throughput, best_stateless
                )),
                Some(s) => Verdict::Qualified(format!(
                    "within noise on this machine ({:.0} vs {:.0} req/s): HTTP and the proxy dominate; the store lookup is a small part of a request",
                    s.throughput, best_stateless
                )),
                None => Verdict::NotMeasured("node-loss"),
            };
            Claim {
                aspect: "Performance per request",
                article: "stateful is fastest: the session is in memory",
                left: stateful.map_or("not run".to_owned(), describe),
                right,
                verdict,
            }
        }
        _ => unmeasured("Performance per request", "stateful is fastest: the session is in memory", "node-loss"),
    });

    // Storage.
    claims.push(match &report.node_loss {
        Some(e) if e.rows.iter().any(|r| r.architecture == "stateful") => {
            let s = e.rows.iter().find(|r| r.architecture == "stateful").expect("checked");
            Claim {
                aspect: "Where sessions are stored",
                article: "in server memory vs a shared store or the client",
                left: format!(
                    "each node's memory: node 1 came back empty, {} users lost their session again after its restart",
                    s.lost_after_restart
                ),
                right: "Redis (survives any node), or nothing per session for JWTs (the revocation list holds only what was revoked)".to_owned(),
                verdict: if s.lost_after_restart > 0 {
                    Verdict::Confirmed("memory does not survive a restart; the users it served log in twice".to_owned())
                } else {
                    Verdict::Qualified(
                        "the restarted node got no users back within the run (nginx waits fail_timeout before trying it again)".to_owned(),
                    )
                },
            }
        }
        _ => unmeasured("Where sessions are stored", "in server memory vs a shared store or the client", "node-loss"),
    });
    claims
}

fn sessions_vs_jwt(report: &LabReport) -> Vec<Claim> {
    let mut claims = Vec::new();

    claims.push(match &report.logout {
        Some(e) if !e.rows.is_empty() => {
            let find = |name: &str| {
                e.rows
                    .iter()
                    .find(|r| r.mechanism == name && r.action == "logout")
            };
            let describe = |name: &str| {
                find(name).map_or(String::new(), |r| {
                    format!("{name}: median {}, max {}", ms(r.median_ms), ms(r.max_ms))
                })
            };
            let left = ["session-memory", "session-redis", "session-redis-near-cache", "sealed-cookie"]
                .into_iter()
                .map(describe)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let right = format!(
                "{}; {} (access tokens live {}s)",
                describe("jwt-revocation-list"),
                describe("jwt-jwks-only"),
                e.access_ttl_s
            );
            let list = find("jwt-revocation-list").map_or(f64::INFINITY, |r| r.max_ms);
            let jwks = find("jwt-jwks-only").map_or(0.0, |r| r.median_ms);
            let sessions_max = ["session-redis", "session-redis-near-cache"]
                .into_iter()
                .filter_map(find)
                .map(|r| r.max_ms)
                .fold(0.0, f64::max);
            let verdict = if jwks > 10.0 * list.max(25.0) && sessions_max < 1000.0 {
                Verdict::Qualified(format!(
                    "for a service that verifies tokens alone, a logged-out token stays valid until it expires ({} median here, up to 15 min by default): the JWT logout problem is real; tessera's own nodes refuse it at the first replay after the logout (max {}) because they keep a revocation list, which is server-side state again",
                    ms(jwks),
                    ms(list)
                ))
            } else {
                Verdict::Qualified(
                    "the run did not separate the mechanisms as expected (see the logout table)".to_owned(),
                )
            };
            Claim {
                aspect: "Instant logout",
                article: "sessions: delete it and it is gone; JWT: valid until it expires",
                left,
                right,
                verdict,
            }
        }
        _ => unmeasured("Instant logout", "sessions: delete it and it is gone; JWT: valid until it expires", "logout"),
    });

    claims.push(match &report.logout {
        Some(e) if e.rows.iter().any(|r| r.action == "disable") => {
            let describe = |names: &[&str]| {
                e.rows
                    .iter()
                    .filter(|r| r.action == "disable" && names.contains(&r.mechanism.as_str()))
                    .map(|r| {
                        if r.never_refused > 0 {
                            format!(
                                "{}: {} of {} still accepted after {}s",
                                r.mechanism, r.never_refused, r.users, e.window_s
                            )
                        } else {
                            format!("{}: max {}", r.mechanism, ms(r.max_ms))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let memory = e
                .rows
                .iter()
                .find(|r| r.action == "disable" && r.mechanism == "session-memory");
            let verdict = match memory {
                Some(m) if m.never_refused > 0 => Verdict::Qualified(
                    "a shared store or revocation list ends a disabled account everywhere at once; sessions in one node's memory are not reached by an admin working on another node".to_owned(),
                ),
                _ => Verdict::Confirmed(
                    "every node refused the disabled account's credentials at once, except where a token is checked without tessera".to_owned(),
                ),
            };
            Claim {
                aspect: "Disabling an account",
                article: "revocation needs server state",
                left: describe(&["session-memory", "session-redis", "session-redis-near-cache", "sealed-cookie"]),
                right: describe(&["jwt-revocation-list", "jwt-jwks-only"]),
                verdict,
            }
        }
        _ => unmeasured("Disabling an account", "revocation needs server state", "logout"),
    });

    claims.push(match &report.permissions {
        Some(e) if !e.rows.is_empty() => {
            let find = |name: &str| e.rows.iter().find(|r| r.mechanism == name);
            let describe = |name: &str| {
                find(name).map_or(String::new(), |r| {
                    if r.never_seen > 0 {
                        format!("{name}: {} of {} never saw it within {}s", r.never_seen, r.users, e.window_s)
                    } else {
                        format!("{name}: median {}, max {}", ms(r.median_ms), ms(r.max_ms))
                    }
                })
            };
            let left = ["session-memory", "session-redis", "session-redis-near-cache", "sealed-cookie"]
                .into_iter()
                .map(describe)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let jwt = e.rows.iter().find(|r| r.mechanism.starts_with("jwt"));
            let right = jwt.map_or(String::new(), |r| {
                format!(
                    "{}: median {}, max {}, at the next refresh (access tokens live {}s)",
                    r.mechanism,
                    ms(r.median_ms),
                    ms(r.max_ms),
                    e.access_ttl_s
                )
            });
            let session = find("session-redis").map_or(f64::INFINITY, |r| r.max_ms);
            let verdict = match jwt {
                Some(j) if j.median_ms > 10.0 * session.max(25.0) => Verdict::Confirmed(format!(
                    "a shared session shows the new role on the next request ({}); a token keeps the old one until it is refreshed ({} median, up to the token's lifetime)",
                    ms(session),
                    ms(j.median_ms)
                )),
                _ => Verdict::Qualified(
                    "the run did not separate the mechanisms as expected (see the permissions table)".to_owned(),
                ),
            };
            Claim {
                aspect: "Dynamic permissions",
                article: "sessions: immediate; JWT: stale until the token is renewed",
                left,
                right,
                verdict,
            }
        }
        _ => unmeasured("Dynamic permissions", "sessions: immediate; JWT: stale until the token is renewed", "permissions"),
    });

    claims.push(match (&report.node_loss, &report.scale_out) {
        (Some(n), _) if !n.rows.is_empty() => {
            let find = |name: &str| n.rows.iter().find(|r| r.architecture == name);
            let left = format!(
                "in one node's memory: {} lost on a node's death; in Redis: {} lost",
                find("stateful").map_or("-".to_owned(), |r| r.sessions_lost.to_string()),
                find("stateless-redis").map_or("-".to_owned(), |r| r.sessions_lost.to_string()),
            );
            let right = format!(
                "any node verifies any token with the shared key: {} lost",
                find("stateless-jwt").map_or("-".to_owned(), |r| r.sessions_lost.to_string()),
            );
            let ok = find("stateless-jwt").is_some_and(|r| r.sessions_lost == 0)
                && find("stateless-redis").is_some_and(|r| r.sessions_lost == 0);
            Claim {
                aspect: "Multiple servers",
                article: "sessions need a shared store; JWTs need only the key",
                left,
                right,
                verdict: if ok {
                    Verdict::Qualified(
                        "JWTs need no session store, but sessions scale as well once the store is shared (Redis lost none): what matters is where the state lives, not the format".to_owned(),
                    )
                } else {
                    Verdict::Qualified("see the node-loss table".to_owned())
                },
            }
        }
        _ => unmeasured("Multiple servers", "sessions need a shared store; JWTs need only the key", "node-loss"),
    });

    claims.push(match &report.verify_cost {
        Some(e) if !e.rows.is_empty() => {
            let describe = |prefix: &str| {
                e.rows
                    .iter()
                    .filter(|r| r.mechanism.starts_with(prefix))
                    .map(|r| format!("{}: {:.0} µs, {:.0} req/s", r.mechanism, r.profile_cpu_us, r.profile_rps))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let health = e.rows.iter().map(|r| r.health_cpu_us).sum::<f64>() / e.rows.len() as f64;
            let redis = e
                .rows
                .iter()
                .find(|r| r.mechanism == "session-redis")
                .map_or(f64::NAN, |r| r.profile_cpu_us);
            let jwt_min = e
                .rows
                .iter()
                .filter(|r| r.mechanism.starts_with("jwt"))
                .map(|r| r.profile_cpu_us)
                .fold(f64::INFINITY, f64::min);
            let jwt_max = e
                .rows
                .iter()
                .filter(|r| r.mechanism.starts_with("jwt"))
                .map(|r| r.profile_cpu_us)
                .fold(0.0, f64::max);
            let verdict = if jwt_max < redis {
                Verdict::Confirmed(format!(
                    "verifying a signature ({jwt_min:.0}–{jwt_max:.0} µs per request) costs a node less than asking Redis ({redis:.0} µs), and any service can do it with the public key alone (/health: {health:.0} µs; CPU time is read at 100 Hz, so a few µs is noise)"
                ))
            } else {
                Verdict::Qualified(format!(
                    "a signature check ({jwt_min:.0}–{jwt_max:.0} µs per request, by algorithm) is not cheaper than a Redis lookup ({redis:.0} µs) on this machine; what a JWT saves a microservice is the call to a shared store, not CPU (/health: {health:.0} µs)"
                ))
            };
            Claim {
                aspect: "Microservices / verification cost",
                article: "any service verifies a JWT locally; a session needs the store",
                left: format!("{}; {}", describe("session"), describe("sealed")),
                right: describe("jwt"),
                verdict,
            }
        }
        _ => unmeasured("Microservices / verification cost", "any service verifies a JWT locally; a session needs the store", "verify-cost"),
    });

    claims.push(match &report.logout {
        Some(e) => {
            let sealed = e
                .rows
                .iter()
                .find(|r| r.mechanism == "sealed-cookie" && r.action == "logout");
            Claim {
                aspect: "Storage on the server",
                article: "sessions: one record per session; JWT: none",
                left: "a record per session (Redis or SQLite); a sealed cookie keeps none while it is valid".to_owned(),
                right: format!(
                    "none per token; logging out still needs a revocation list (here: {}), kept for the token's lifetime",
                    sealed.map_or("-".to_owned(), |r| format!("sealed cookies refused after {}", ms(r.max_ms)))
                ),
                verdict: Verdict::Qualified(
                    "stateless credentials that can be revoked bring back server state: the revocation list, smaller than a session store but shared by every node".to_owned(),
                ),
            }
        }
        None => unmeasured("Storage on the server", "sessions: one record per session; JWT: none", "logout"),
    });
    claims
}

fn unmeasured(aspect: &'static str, article: &'static str, experiment: &'static str) -> Claim {
    Claim {
        aspect,
        article,
        left: "-".to_owned(),
        right: "-".to_owned(),
        verdict: Verdict::NotMeasured(experiment),
    }
}
