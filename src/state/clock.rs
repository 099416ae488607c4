//! How far GitHub's clock is from ours, as last learnt per API (from a `Date` header when GitHub
//! refused a JWT for its times), so the next JWT is signed on GitHub's clock at once.

use super::{State, digest};
use serde::{Deserialize, Serialize};

impl State {
    /// Seconds to add to our clock to get GitHub's, as last learnt for this API.
    pub fn clock_offset(&self, api: &str) -> i64 {
        self.read("clock", &digest(&[api]))
            .ok()
            .and_then(|b| serde_json::from_slice::<ClockRecord>(&b).ok())
            .filter(|r| r.api == api)
            .map_or(0, |r| r.offset)
    }

    pub fn remember_clock_offset(&self, api: &str, offset: i64) {
        self.write_json(
            "clock",
            &digest(&[api]),
            &ClockRecord {
                api: api.to_owned(),
                offset,
            },
        );
    }
}

#[derive(Serialize, Deserialize)]
struct ClockRecord {
    api: String,
    offset: i64,
}
