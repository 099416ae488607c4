//! The permissions a token is narrowed to, parsed once: from `--permissions
//! contents:read,metadata:read` or from `permissions = { contents = "read" }` in the config file,
//! with the same rules for both (a name of lower-case letters and `_`; read, write or admin).

use super::quoted;
use anyhow::{Result, anyhow, bail};
use std::collections::BTreeMap;

/// How much of one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }
}

/// Permissions to ask for when minting; empty means all the installation has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions(BTreeMap<String, Level>);

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

impl Permissions {
    /// `contents:read,metadata:read` (also `contents=read`), as `--permissions` takes them.
    pub fn parse(text: &str) -> Result<Permissions> {
        let mut out = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, level) = item
                .split_once([':', '='])
                .map(|(n, l)| (n.trim(), l.trim()))
                .ok_or_else(|| {
                    anyhow!(
                        "--permissions takes NAME:LEVEL pairs, like contents:read,metadata:read"
                    )
                })?;
            let level = Level::parse(level).filter(|_| valid_name(name)).ok_or_else(|| {
                anyhow!(
                    "--permissions: each entry is a permission name (like contents) and read, write or admin"
                )
            })?;
            out.insert(name.to_owned(), level);
        }
        if out.is_empty() {
            bail!(
                "--permissions is empty; give NAME:LEVEL pairs, like contents:read,metadata:read"
            );
        }
        Ok(Permissions(out))
    }

    /// The config file's `permissions = { contents = "read" }`.
    pub fn from_table(table: &BTreeMap<String, String>) -> Result<Permissions> {
        let mut out = BTreeMap::new();
        for (name, level) in table {
            match Level::parse(level).filter(|_| valid_name(name)) {
                Some(level) => out.insert(name.clone(), level),
                None => bail!(
                    "permissions: {} = {} must be a permission name (like contents) and read, write or admin",
                    quoted(name),
                    quoted(level)
                ),
            };
        }
        Ok(Permissions(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `contents:read,metadata:read`: a stable text, part of the cache key and shown to people.
    pub fn scope(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// As GitHub's API takes them: `{"contents": "read"}`.
    pub fn to_json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_follow_one_rule() {
        let p = Permissions::parse("contents:read, metadata=read").unwrap();
        assert_eq!(p.scope(), "contents:read,metadata:read");
        assert_eq!(
            p.to_json(),
            serde_json::json!({"contents": "read", "metadata": "read"})
        );
        for bad in ["", "contents", "contents:all", "Contents:read", "a:b:c"] {
            assert!(Permissions::parse(bad).is_err(), "{bad}");
        }
        let table = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(
            Permissions::from_table(&table("contents", "write"))
                .unwrap()
                .scope(),
            "contents:write"
        );
        // The file took any non-empty name before; now the names --permissions takes.
        for (k, v) in [("Contents", "read"), ("", "read"), ("contents", "all")] {
            assert!(Permissions::from_table(&table(k, v)).is_err(), "{k} = {v}");
        }
    }
}
