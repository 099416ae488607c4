//! The cache check: a write/read/delete round trip in each backend the mode uses.

use super::report::{Report, Status};
use crate::cache::{Cache, CacheKey};
use crate::config::{App, CacheMode, Config};
use crate::github::{self, Deadline};
use crate::secret::Expiring;
use crate::secret::Secret;
use crate::state::State;
use serde_json::json;

/// A write/read/delete round trip in each cache backend the configured mode uses.
pub(super) fn check(config: &Config, app: &App, deadline: Deadline, report: &mut Report) {
    let modes: &[(CacheMode, &str)] = match config.cache {
        CacheMode::None => {
            report.add(
                "cache",
                Status::Skip,
                "the cache is off (--cache none): every get mints",
            );
            return;
        }
        CacheMode::Auto if cfg!(target_os = "linux") && crate::container::detected().is_some() => {
            &[(CacheMode::File, "file")]
        }
        CacheMode::Auto => &[(CacheMode::Keyring, "keyring"), (CacheMode::File, "file")],
        CacheMode::Keyring => &[(CacheMode::Keyring, "keyring")],
        CacheMode::File => &[(CacheMode::File, "file")],
    };
    let state = State::open();
    let mut lines = Vec::new();
    let mut working = Vec::new();
    if config.cache == CacheMode::Auto
        && cfg!(target_os = "linux")
        && let Some(why) = crate::container::detected()
    {
        lines.push(format!(
            "in a container ({why}): --cache auto leaves out the kernel keyring, which belongs to the uid on the host's kernel and so to every container running as this uid; tokens are cached in this container's files (--cache keyring uses the kernel keyring anyway)"
        ));
    }
    for (mode, name) in modes {
        if deadline.passed() {
            lines.push(format!(
                "{name} backend: not checked, the time budget (--timeout) ran out"
            ));
            continue;
        }
        let cache = Cache::new(*mode, &state).with_deadline(deadline.at());
        let key = CacheKey::new(format!("doctor://round-trip|{}", app.describe()));
        let value = format!("doctor-round-trip-{}", std::process::id());
        let token = Expiring {
            secret: Secret::new(value.clone()),
            expires_at: github::unix_now() + 3600,
        };
        let saved = cache.save(&key, &token);
        let read = cache.load(&key).is_some_and(|t| t.secret.expose() == value);
        cache.remove(&key);
        let deleted = cache.load(&key).is_none();
        if !saved.is_empty() && read && deleted {
            lines.push(if saved == [*name] {
                format!("{name} backend: write, read and delete work")
            } else {
                format!(
                    "{name} backend ({}): write, read and delete work",
                    saved.join(" + ")
                )
            });
            working.push(json!({ "mode": name, "stores": saved }));
        } else {
            lines.push(format!(
                "{name} backend: unusable here (write {}, read {}, delete {})",
                if saved.is_empty() { "failed" } else { "ok" },
                if read { "ok" } else { "failed" },
                if deleted { "ok" } else { "failed" }
            ));
        }
    }
    let status = if working.is_empty() {
        Status::Fail
    } else {
        Status::Ok
    };
    report.add_data(
        "cache",
        status,
        lines.join("\n"),
        json!({ "working": working }),
    );
}
