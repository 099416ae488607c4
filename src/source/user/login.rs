//! The device flow as a person sees it: ask for a code, show it and the verification URL on
//! stderr (never stdout), open a browser only when asked, poll at the server's `interval` (5 s
//! more after each `slow_down`) until the code expires, and stop at once on Ctrl-C.

use super::oauth::{self, OAuthError, Poll, Post, Tokens, Web};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A poll is sent this long after the interval has passed, so that timer and clock granularity
/// never make it arrive early (GitHub answers an early poll with `slow_down`).
const POLL_MARGIN: Duration = Duration::from_millis(150);
/// Consecutive polls without an answer (network trouble) before giving up.
const MAX_TRANSPORT_FAILURES: u32 = 3;
/// Longest wait between polls taken from the server (`interval`, `slow_down`): 15 minutes.
const MAX_INTERVAL: u64 = 15 * 60;
/// Longest life of a device code taken from the server (`expires_in`): a day.
const MAX_CODE_LIFETIME: u64 = 24 * 60 * 60;

/// Time, for the loop and its tests.
pub trait Clock {
    /// Unix seconds.
    fn now(&self) -> u64;
    fn sleep(&mut self, d: Duration);
}

pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> u64 {
        crate::github::unix_now()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Why no tokens came back.
#[derive(Debug)]
pub enum LoginError {
    OAuth(OAuthError),
    /// Ctrl-C.
    Cancelled,
}

/// Opens a URL in a browser.
pub type Opener<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// What the flow needs besides the network.
pub struct Flow<'a> {
    pub web: &'a Web,
    /// For messages: `github.com`.
    pub host: &'a str,
    pub client_id: &'a str,
    /// Set by the Ctrl-C handler.
    pub cancelled: &'a AtomicBool,
    /// Opens the verification URL in a browser (`--open`); `None`: never.
    pub open: Option<Opener<'a>>,
}

fn say(err: &mut dyn Write, line: &str) {
    let _ = writeln!(err, "git-credential-github-app: {line}");
}

/// Sleep `d` in short steps, returning early (false) on Ctrl-C.
fn wait(clock: &mut dyn Clock, d: Duration, cancelled: &AtomicBool) -> bool {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        if cancelled.load(Ordering::SeqCst) {
            return false;
        }
        let s = left.min(step);
        clock.sleep(s);
        left -= s;
    }
    !cancelled.load(Ordering::SeqCst)
}

/// Runs the device flow to the end: tokens, or why not.
pub fn run(
    flow: &Flow<'_>,
    post: &dyn Post,
    clock: &mut dyn Clock,
    err: &mut dyn Write,
) -> Result<Tokens, LoginError> {
    let code = oauth::request_device_code(post, flow.web, flow.host, flow.client_id)
        .map_err(LoginError::OAuth)?;
    let started = clock.now();
    let expires_in = code.expires_in.min(MAX_CODE_LIFETIME);
    let expires_at = started.saturating_add(expires_in);
    say(
        err,
        &format!("First copy your one-time code: {}", code.user_code),
    );
    say(
        err,
        &format!(
            "Then open {} and enter it to authorize app {} (the code expires in {}; Ctrl-C stops waiting)",
            code.verification_uri,
            flow.client_id,
            humantime::format_duration(Duration::from_secs(expires_in))
        ),
    );
    if let Some(open) = flow.open {
        match open(&code.verification_uri) {
            Ok(()) => say(err, "opened the page in your browser"),
            Err(e) => say(
                err,
                &format!("could not open a browser ({e}); open the page yourself"),
            ),
        }
    }
    let mut interval = code.interval.clamp(1, MAX_INTERVAL);
    let mut failures = 0;
    loop {
        if !wait(
            clock,
            Duration::from_secs(interval) + POLL_MARGIN,
            flow.cancelled,
        ) {
            return Err(LoginError::Cancelled);
        }
        let now = clock.now();
        if now >= expires_at {
            return Err(LoginError::OAuth(OAuthError::ExpiredToken));
        }
        match oauth::poll(
            post,
            flow.web,
            flow.host,
            flow.client_id,
            &code.device_code,
            now,
        ) {
            Ok(Poll::Pending) => {
                failures = 0;
                crate::trace!("authorization_pending: still waiting for the code to be entered");
            }
            Ok(Poll::SlowDown { interval: given }) => {
                failures = 0;
                interval = (interval + 5).max(given.unwrap_or(0)).min(MAX_INTERVAL);
                say(
                    err,
                    &format!(
                        "{} asked to be polled less often (slow_down); now every {}",
                        flow.host,
                        humantime::format_duration(Duration::from_secs(interval))
                    ),
                );
            }
            Ok(Poll::Done(tokens)) => return Ok(tokens),
            Err(OAuthError::Transport(e)) if failures + 1 < MAX_TRANSPORT_FAILURES => {
                failures += 1;
                crate::trace!("poll failed ({e}); trying again");
            }
            Err(e) => return Err(LoginError::OAuth(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::oauth::tests::Scripted;
    use super::*;

    struct Fake {
        now_ms: u64,
        slept: Vec<Duration>,
        cancel_after: Option<(u64, &'static AtomicBool)>,
    }

    impl Clock for Fake {
        fn now(&self) -> u64 {
            1_000 + self.now_ms / 1000
        }
        fn sleep(&mut self, d: Duration) {
            self.now_ms += d.as_millis() as u64;
            self.slept.push(d);
            if let Some((at, flag)) = self.cancel_after
                && self.now_ms >= at
            {
                flag.store(true, Ordering::SeqCst);
            }
        }
    }

    const CODE: &str = r#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://github.com/login/device","expires_in":900,"interval":5}"#;

    fn flow<'a>(web: &'a Web, cancelled: &'a AtomicBool) -> Flow<'a> {
        Flow {
            web,
            host: "github.com",
            client_id: "Iv23liX",
            cancelled,
            open: None,
        }
    }

    #[test]
    fn polls_at_the_interval_adds_five_seconds_after_slow_down_and_shows_the_code_on_stderr() {
        let web = Web("https://github.com".into());
        let cancelled = AtomicBool::new(false);
        let post = Scripted::new(vec![
            (200, CODE),
            (200, r#"{"error":"authorization_pending"}"#),
            (200, r#"{"error":"slow_down","interval":10}"#),
            (200, r#"{"error":"authorization_pending"}"#),
            (
                200,
                r#"{"access_token":"ghu_A","expires_in":28800,"refresh_token":"ghr_B","refresh_token_expires_in":15897600}"#,
            ),
        ]);
        let mut clock = Fake {
            now_ms: 0,
            slept: vec![],
            cancel_after: None,
        };
        let mut err = Vec::new();
        let tokens = run(&flow(&web, &cancelled), &post, &mut clock, &mut err).unwrap();
        assert_eq!(tokens.access.expose(), "ghu_A");
        // 5 s, 5 s, then 10 s twice, each with the margin.
        let total: u64 = clock.slept.iter().map(|d| d.as_millis() as u64).sum();
        assert_eq!(total, 5_150 + 5_150 + 10_150 + 10_150);
        assert_eq!(
            tokens.expires_at,
            Some(1_000 + 30 + 28_800),
            "counted from the poll that got it"
        );
        let err = String::from_utf8(err).unwrap();
        assert_eq!(
            err,
            "git-credential-github-app: First copy your one-time code: WDJB-MJHT\n\
             git-credential-github-app: Then open https://github.com/login/device and enter it to authorize app Iv23liX (the code expires in 15m; Ctrl-C stops waiting)\n\
             git-credential-github-app: github.com asked to be polled less often (slow_down); now every 10s\n"
        );
    }

    #[test]
    fn hostile_intervals_and_lifetimes_are_clamped_without_panicking() {
        let web = Web("https://github.com".into());
        let cancelled = AtomicBool::new(false);
        let huge = r#"{"device_code":"dc","user_code":"AAAA-BBBB","verification_uri":"https://github.com/login/device","expires_in":18446744073709551615,"interval":18446744073709551615}"#;
        let post = Scripted::new(vec![
            (200, huge),
            (
                200,
                r#"{"error":"slow_down","interval":18446744073709551615}"#,
            ),
            (
                200,
                r#"{"access_token":"ghu_A","expires_in":18446744073709551615}"#,
            ),
        ]);
        let mut clock = Fake {
            now_ms: 0,
            slept: vec![],
            cancel_after: None,
        };
        let mut err = Vec::new();
        let tokens = run(&flow(&web, &cancelled), &post, &mut clock, &mut err).unwrap();
        let total: u64 = clock.slept.iter().map(|d| d.as_millis() as u64).sum();
        assert_eq!(total, 2 * (MAX_INTERVAL * 1000 + 150), "15 min at most");
        assert_eq!(
            tokens.expires_at,
            Some(1_000 + 2 * MAX_INTERVAL + oauth::MAX_LIFETIME)
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("the code expires in 1day;"), "{err}");
        assert!(err.contains("now every 15m\n"), "{err}");
    }

    #[test]
    fn stops_when_the_code_expires_and_on_ctrl_c() {
        let web = Web("https://github.com".into());
        let cancelled = AtomicBool::new(false);
        let short = r#"{"device_code":"dc","user_code":"AAAA-BBBB","verification_uri":"https://github.com/login/device","expires_in":12,"interval":5}"#;
        let post = Scripted::new(vec![
            (200, short),
            (200, r#"{"error":"authorization_pending"}"#),
            (200, r#"{"error":"authorization_pending"}"#),
        ]);
        let mut clock = Fake {
            now_ms: 0,
            slept: vec![],
            cancel_after: None,
        };
        let e = run(&flow(&web, &cancelled), &post, &mut clock, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(e, LoginError::OAuth(OAuthError::ExpiredToken)),
            "{e:?}"
        );
        assert_eq!(post.sent.borrow().len(), 3, "no poll after expires_in");

        static CANCEL: AtomicBool = AtomicBool::new(false);
        let post = Scripted::new(vec![
            (200, CODE),
            (200, r#"{"error":"authorization_pending"}"#),
        ]);
        let mut clock = Fake {
            now_ms: 0,
            slept: vec![],
            cancel_after: Some((7_000, &CANCEL)),
        };
        let e = run(&flow(&web, &CANCEL), &post, &mut clock, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, LoginError::Cancelled));
        assert!(clock.now_ms < 7_200, "stopped within 100 ms of Ctrl-C");
    }

    #[test]
    fn terminal_errors_end_the_flow_and_the_browser_opens_only_when_asked() {
        let web = Web("https://github.com".into());
        let cancelled = AtomicBool::new(false);
        let post = Scripted::new(vec![(200, CODE), (200, r#"{"error":"access_denied"}"#)]);
        let opened = std::cell::RefCell::new(Vec::new());
        let open = |url: &str| -> Result<(), String> {
            opened.borrow_mut().push(url.to_owned());
            Ok(())
        };
        let mut f = flow(&web, &cancelled);
        f.open = Some(&open);
        let mut clock = Fake {
            now_ms: 0,
            slept: vec![],
            cancel_after: None,
        };
        let e = run(&f, &post, &mut clock, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, LoginError::OAuth(OAuthError::AccessDenied)));
        assert_eq!(*opened.borrow(), ["https://github.com/login/device"]);
    }
}
