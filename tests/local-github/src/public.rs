//! Public repositories: anyone may fetch them, without credentials or with any valid token
//! (github.com counts an authenticated clone against the token's rate limit instead of the
//! anonymous one). Pushing needs a token covering the repository, as for any repository.

use std::collections::BTreeSet;

use crate::git::{self, Authorized, GitPath};
use crate::http::HttpRequest;
use crate::state::World;

/// `Some` when `gp` is a fetch of a public repository that this request may make; `None` leaves
/// the decision to [`git::authorize`] (pushes, private repositories, bad credentials).
pub(crate) fn authorize(
    world: &World,
    public: &BTreeSet<String>,
    req: &HttpRequest,
    gp: &GitPath,
    now: i64,
) -> Option<Authorized> {
    let repo = world.repo(&gp.owner, &gp.repo)?;
    if !public.contains(&key(&repo.owner, &repo.name)) {
        return None;
    }
    let push = gp.rest == "git-receive-pack"
        || req.query_param("service").as_deref() == Some("git-receive-pack");
    if push {
        return None;
    }
    let remote_user = match req.header("authorization") {
        None => String::new(),
        Some(header) => {
            let (user, password) = git::basic_credentials(Some(header))?;
            let (_, inst) = world.check_token(&password, now).ok()?;
            if user != "x-access-token" {
                return None;
            }
            let slug = world.apps.get(&inst.app_id)?.slug.clone();
            format!("{slug}[bot]")
        }
    };
    Some(Authorized {
        path_info: format!("/{}/{}.git/{}", repo.owner, repo.name, gp.rest),
        remote_user,
    })
}

pub(crate) fn key(owner: &str, name: &str) -> String {
    format!(
        "{}/{}",
        owner.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    )
}
