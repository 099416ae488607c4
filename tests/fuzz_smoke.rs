//! The fuzz harness (`fuzz/harness.rs`, shared with the cargo-fuzz targets) on the stable
//! toolchain: every seed under `fuzz/seeds/`, then a few thousand deterministic mutations of them.
//! The long libFuzzer runs are `scripts/fuzz`; this is the short run CI does on every change.

#[path = "../fuzz/harness.rs"]
mod harness;

use harness::{Fixture, Got};
use std::path::Path;

/// Mutated inputs per target; a few seconds in a debug build.
const MUTATIONS: usize = 10_000;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 20, "too few seeds in {}", dir.display());
    seeds
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes and fragments that matter to the parser and the router.
const TOKENS: &[&[u8]] = &[
    b"\r",
    b"\0",
    b"=",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"/",
    b"..",
    b"%",
    b"%0a",
    b"%2F",
    b"%ff",
    b"@",
    b":",
    b"\xff",
    b"\xc3\xa9",
    b"url=https://",
    b"url=http://127.0.0.1:9/",
    b"host=",
    b"protocol=",
    b"path=",
    b"username=x-access-token",
    b"password=",
    b"acme",
    b"octo-org/",
    b"user_emu/",
    b"127.0.0.1:9",
    b"github.com",
];

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            4 => {
                // A long run: sometimes past git's 65535-byte line limit.
                let len = if rng.below(8) == 0 {
                    65_530 + rng.below(10)
                } else {
                    rng.below(300)
                };
                let byte = [b'a', b'=', b'/', b'\r', b'%', b'\n'][rng.below(6)];
                data.splice(at..at, std::iter::repeat_n(byte, len));
            }
            5 => {
                // Splice a line of another seed in (duplicate keys, url after host, ...).
                let other = &seeds[rng.below(seeds.len())].1;
                let line = other
                    .split(|&b| b == b'\n')
                    .nth(rng.below(4))
                    .unwrap_or(b"");
                let mut line = line.to_vec();
                line.push(b'\n');
                data.splice(at..at, line);
            }
            6 => data.truncate(at),
            _ => {
                let byte = [b'\r', b'\0', b'=', b'\n'][rng.below(4)];
                data.insert(at, byte);
            }
        }
    }
    data
}

fn mutations(seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let corpus = [seeds("request"), seeds("get")].concat();
    let mut rng = Rng(seed);
    (0..MUTATIONS).map(move |_| mutate(&mut rng, &corpus))
}

#[test]
fn request_seeds() {
    let served = seeds("request")
        .iter()
        .filter(|(_, data)| harness::request(data))
        .count();
    assert!(served >= 5, "only {served} seeds were routed to an app");
}

#[test]
fn get_seeds() {
    let fixture = Fixture::new();
    let mut counts = std::collections::BTreeMap::new();
    for (name, data) in seeds("get") {
        let got = fixture.get(&data);
        *counts.entry(format!("{got:?}")).or_insert(0) += 1;
        let expected = match name.as_str() {
            "git-get-with-path" | "owner-fallback" | "owner-emu" | "loopback-http-no-path" => {
                Some(Got::Answered)
            }
            "owner-expired" | "owner-not-cached" | "path-traversal" | "nul" => Some(Got::Failed),
            "git-get-no-path" | "username-foreign" | "http-not-loopback" | "ghe" => {
                Some(Got::Passed)
            }
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(got, expected, "seed {name}");
        }
    }
    println!("get seeds: {counts:?}");
}

#[test]
fn request_mutations() {
    let served = mutations(0x9e37_79b9_7f4a_7c15)
        .filter(|data| harness::request(data))
        .count();
    assert!(served > MUTATIONS / 20, "only {served} mutants were routed");
}

#[test]
fn get_mutations() {
    let fixture = Fixture::new();
    let mut counts = [0usize; 3];
    for data in mutations(0xd1b5_4a32_d192_ed03) {
        counts[fixture.get(&data) as usize] += 1;
    }
    println!("get mutations (answered, passed, failed): {counts:?}");
    assert!(
        counts.iter().all(|&n| n > MUTATIONS / 50),
        "mutants did not reach every outcome: {counts:?}"
    );
}
