//! The checks of a broker entry (docs/brokers.md): the OIDC source, the audience, one exchange
//! (`source::broker::checks` makes them; this lists them in the report).

use super::Target;
use super::report::{Report, Status};
use crate::config::{App, SourceSpec};
use crate::github::Deadline;
use crate::source::broker;
use crate::state::State;

/// For a broker entry, its checks; nothing for other entries.
pub(super) fn check_broker(
    app: &App,
    deadline: Deadline,
    target: &Target,
    repo: Option<&(String, String)>,
    report: &mut Report,
) {
    let SourceSpec::Broker(spec) = &app.source else {
        return;
    };
    let repo = repo.map(|(o, r)| (o.as_str(), r.as_str()));
    let api_url = app.api_url(target.scheme);
    let state = State::open();
    for f in broker::checks::diagnose(spec, &app.host, api_url, repo, &state, deadline) {
        let status = match f.ok {
            Some(true) => Status::Ok,
            Some(false) => Status::Fail,
            None => Status::Skip,
        };
        report.add(f.id, status, f.detail);
    }
}
