//! Notices shown once per user, or at most once per interval, so that a warning does not repeat
//! on every get.

use super::{State, Unusable, digest};
use std::time::Duration;

impl State {
    /// True the first time `notice` is asked about (per user), so a warning is shown once, not on
    /// every mint. True as well when nothing can be remembered.
    pub fn first_time(&self, notice: &str) -> bool {
        let name = digest(&["notice", notice]);
        match self.read("notices", &name) {
            Ok(_) => return false,
            Err(Unusable::Missing) => {}
            Err(_) if self.usable_root().is_err() => return true,
            Err(_) => {} // unsafe or unreadable: said again, and replaced
        }
        self.write_json("notices", &name, &notice);
        true
    }

    /// True at most once per `every` for `notice` (per user), so a reminder does not flood
    /// stderr. True as well when nothing can be remembered.
    pub fn at_most_every(&self, notice: &str, every: Duration) -> bool {
        let name = digest(&["every", notice]);
        if let Some(path) = self.file("notices", &name)
            && let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age < every)
        {
            return false;
        }
        self.write_json("notices", &name, &notice);
        true
    }
}
