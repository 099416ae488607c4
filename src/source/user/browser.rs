//! Opening the verification page in a browser, only for `login --open`: `$BROWSER` if set, else
//! the platform's opener (`xdg-open`, `open`, `start`). The URL is GitHub's public page, not a
//! secret, so it may go in argv.

use std::process::{Command, Stdio};

/// Start the browser on `url` without waiting for it to close.
pub fn open(url: &str) -> Result<(), String> {
    let mut cmd = match std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        Some(browser) => {
            let mut c = Command::new(browser.trim());
            c.arg(url);
            c
        }
        None if cfg!(target_os = "macos") => {
            let mut c = Command::new("open");
            c.arg(url);
            c
        }
        None if cfg!(windows) => {
            let mut c = Command::new("cmd");
            c.args(["/C", "start", ""]).arg(url);
            c
        }
        None => {
            let mut c = Command::new("xdg-open");
            c.arg(url);
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| e.to_string())
}
