//! Any other source of tokens, as a program: `token_command = ["prog", "arg", …]` in the config
//! file (an RFC 8693 token-exchange server through curl, an internal broker, a Vault plugin).
//!
//! Its stdin is git's request and what it is for, one `key=value` a line:
//! `protocol`, `host`, `path` (as git sent them), `owner`, `repo`, and `oidc_token` when an OIDC
//! source is configured (fetched fresh for this run; on stdin, never in argv or the environment).
//! It prints the token, with an optional expiry, either as JSON —
//! `{"token" | "access_token" | "password": "…", "expires_at" | "expiry": RFC 3339 or Unix seconds,
//! "expires_in": seconds}` (an RFC 8693 answer as it comes) — or as git credential lines
//! (`password=…`, `password_expiry_utc=…`). Printing nothing, and exiting 0, means "not mine".
//! It runs inside the get's time budget and is stopped when it runs over; on failure its stderr
//! is shown on one line, masked.

use crate::secret::Secret;

/// A token and its expiry as the command printed them.
#[derive(Debug)]
pub struct Printed {
    pub secret: Secret,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

/// The command's stdin.
pub fn input(
    protocol: &str,
    host: &str,
    path: Option<&str>,
    owner: Option<&str>,
    repo: Option<&str>,
    oidc: Option<&Secret>,
) -> Vec<u8> {
    let mut s = format!("protocol={protocol}\nhost={host}\n");
    for (k, v) in [("path", path), ("owner", owner), ("repo", repo)] {
        if let Some(v) = v {
            s.push_str(&format!("{k}={v}\n"));
        }
    }
    if let Some(t) = oidc {
        s.push_str(&format!("oidc_token={}\n", t.expose()));
    }
    s.push('\n');
    s.into_bytes()
}

/// What the command printed: a token, or None for "not mine" (nothing printed).
pub fn parse(out: &[u8], now: u64) -> Result<Option<Printed>, String> {
    let text =
        std::str::from_utf8(out).map_err(|_| "printed bytes that are not text".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (secret, expires_at) = if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| "printed JSON the helper cannot read".to_owned())?;
        let secret = ["token", "access_token", "password"]
            .iter()
            .find_map(|k| v[*k].as_str())
            .ok_or("printed JSON without token, access_token or password")?
            .to_owned();
        // A present expiry the helper cannot read is an error, not "no expiry" (which would
        // become the one-hour cap, perhaps later than the real expiry).
        let at = match ["expires_at", "expiry"].iter().find(|k| !v[**k].is_null()) {
            Some(k) => Some(time(&v[*k]).ok_or_else(|| {
                format!("printed an {k} that is neither RFC 3339 nor Unix seconds")
            })?),
            None => None,
        };
        let within = match &v["expires_in"] {
            serde_json::Value::Null => None,
            n => Some(
                now.saturating_add(
                    n.as_u64()
                        .ok_or("printed an expires_in that is not a whole number of seconds")?,
                ),
            ),
        };
        (secret, at.or(within))
    } else {
        let mut secret = None;
        let mut at = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("password", v)) => secret = Some(v.to_owned()),
                Some(("password_expiry_utc", v)) => {
                    at = Some(v.trim().parse::<u64>().map_err(|_| {
                        "printed a password_expiry_utc that is not Unix seconds".to_owned()
                    })?)
                }
                _ => {}
            }
        }
        (
            secret.ok_or("printed neither JSON nor a password= line")?,
            at,
        )
    };
    if secret.is_empty() || secret.contains(['\r', '\n', '\0']) {
        return Err("printed an empty or multi-line token".to_owned());
    }
    Ok(Some(Printed {
        secret: Secret::new(secret),
        expires_at: expires_at.filter(|&e| e > 0),
    }))
}

fn time(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => super::unix_time(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8693_answers_are_read_as_they_come() {
        let p = parse(br#"{"access_token":"ghs_a","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A","expires_in":900}"#, 1000)
            .unwrap()
            .unwrap();
        assert_eq!((p.secret.expose(), p.expires_at), ("ghs_a", Some(1900)));
    }

    #[test]
    fn json_and_git_lines_both_work() {
        let p = parse(
            br#"{"token":"ghs_b","expires_at":"2030-01-01T00:00:00Z"}"#,
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.expires_at, Some(1_893_456_000));
        let p = parse(
            b"username=x-access-token\npassword=ghs_c\npassword_expiry_utc=1234\n",
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.secret.expose(), p.expires_at), ("ghs_c", Some(1234)));
        let p = parse(b"{\"token\":\"ghs_d\"}", 0).unwrap().unwrap();
        assert_eq!(p.expires_at, None);
    }

    #[test]
    fn nothing_printed_is_not_mine_and_garbage_is_an_error() {
        assert!(parse(b"\n", 0).unwrap().is_none());
        assert!(parse(b"hello", 0).is_err());
        assert!(parse(br#"{"tok":"x"}"#, 0).is_err());
    }

    #[test]
    fn the_input_carries_the_target_and_the_oidc_token() {
        let oidc = Secret::new("a.b.c");
        let i = input(
            "https",
            "github.com",
            Some("acme/w.git"),
            Some("acme"),
            Some("w"),
            Some(&oidc),
        );
        assert_eq!(
            String::from_utf8(i).unwrap(),
            "protocol=https\nhost=github.com\npath=acme/w.git\nowner=acme\nrepo=w\noidc_token=a.b.c\n\n"
        );
    }

    #[test]
    fn an_expiry_with_an_offset_is_read_and_an_unreadable_one_refused() {
        // 2026-12-02T13:00:00Z = 1_796_216_400.
        let p = parse(
            br#"{"token":"ghs_e","expires_at":"2026-12-02T15:00:00+02:00"}"#,
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.expires_at, Some(1_796_216_400));
        for out in [
            &br#"{"token":"ghs_f","expires_at":"next tuesday"}"#[..],
            br#"{"token":"ghs_f","expiry":1.5}"#,
            br#"{"token":"ghs_f","expires_in":"soon"}"#,
            b"password=ghs_f\npassword_expiry_utc=later\n",
        ] {
            let e = parse(out, 0).unwrap_err();
            assert!(e.contains("expir") && !e.contains("ghs_f"), "{e}");
        }
    }
}
