//! doctor's report: one line per check with its status, and the JSON beside it.

use serde_json::Value;

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    /// Worth knowing, not a failure (not counted in the exit status).
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub(super) fn tag(self) -> &'static str {
        match self {
            Status::Ok => "[ OK ]",
            Status::Warn => "[WARN]",
            Status::Fail => "[FAIL]",
            Status::Skip => "[SKIP]",
        }
    }
    pub(super) fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

pub(super) struct Check {
    /// A stable identifier (JSON `id`).
    pub(super) id: &'static str,
    pub(super) status: Status,
    /// One line (more lines are indented under it).
    pub(super) detail: String,
    /// Machine-readable facts for `--json`.
    pub(super) data: Value,
}

#[derive(Default)]
pub(super) struct Report {
    pub(super) checks: Vec<Check>,
}

impl Report {
    pub(super) fn add(&mut self, id: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            id,
            status,
            detail: detail.into(),
            data: Value::Null,
        });
    }

    pub(super) fn add_data(
        &mut self,
        id: &'static str,
        status: Status,
        detail: String,
        data: Value,
    ) {
        self.checks.push(Check {
            id,
            status,
            detail,
            data,
        });
    }

    pub(super) fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}
