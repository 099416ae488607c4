//! The Git LFS API as github.com serves it beside a repository:
//! `POST /{owner}/{repo}.git/info/lfs/objects/batch` (basic transfer), the object
//! upload/download URLs it hands out, and `POST …/info/lfs/locks/verify`.
//!
//! Authorisation is git's: `x-access-token` Basic credentials with a token covering the
//! repository, `contents: read` to download, `contents: write` to upload. Without credentials
//! the answer is 401 with `LFS-Authenticate: Basic realm="GitHub"` (git-lfs then asks
//! `git credential fill`). Objects live in the bare repository under `lfs/objects/aa/bb/oid`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::git::{self, GitPath};
use crate::http::{HttpRequest, HttpResponse};
use crate::{LockExt, Shared};

pub(crate) const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// The message github.com gives an LFS request without credentials.
const MSG_CREDENTIALS_NEEDED: &str = "Credentials needed";

/// `/{owner}/{repo}[.git]/info/lfs/{rest}`.
pub(crate) struct LfsPath {
    owner: String,
    repo: String,
    rest: String,
}

pub(crate) fn parse_path(path: &str) -> Option<LfsPath> {
    let p = path.strip_prefix('/')?;
    let mut it = p.splitn(3, '/');
    let owner = it.next()?;
    let repo = it.next()?;
    let rest = it.next()?.strip_prefix("info/lfs/")?;
    if owner.is_empty() || repo.is_empty() || owner.starts_with('.') || repo.starts_with('.') {
        return None;
    }
    Some(LfsPath {
        owner: owner.to_string(),
        repo: repo.strip_suffix(".git").unwrap_or(repo).to_string(),
        rest: rest.to_string(),
    })
}

fn lfs_error(status: u16, message: &str) -> HttpResponse {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/repositories/working-with-files/managing-large-files",
    });
    let mut r = HttpResponse::new(status, LFS_JSON, body.to_string());
    if status == 401 {
        r.set_header("LFS-Authenticate", "Basic realm=\"GitHub\"");
    }
    r
}

fn valid_oid(oid: &str) -> bool {
    oid.len() == 64
        && oid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn object_path(repo_dir: &Path, oid: &str) -> PathBuf {
    repo_dir
        .join("lfs/objects")
        .join(&oid[0..2])
        .join(&oid[2..4])
        .join(oid)
}

pub(crate) fn handle(shared: &Shared, req: &HttpRequest, lp: &LfsPath, now: i64) -> HttpResponse {
    let (write, oid) = match (req.method.as_str(), lp.rest.as_str()) {
        ("POST", "objects/batch") => (batch_is_upload(&req.body), None),
        ("POST", "locks/verify") => (true, None),
        ("PUT", r) => (true, r.strip_prefix("objects/")),
        ("GET", r) => (false, r.strip_prefix("objects/")),
        _ => return lfs_error(404, "Not Found"),
    };
    // The same decision as for git: a fetch for downloads, a push for uploads.
    let gp = GitPath {
        owner: lp.owner.clone(),
        repo: lp.repo.clone(),
        rest: if write {
            "git-receive-pack"
        } else {
            "git-upload-pack"
        }
        .to_string(),
    };
    let auth = {
        let world = shared.world.guard();
        let public = world.repo(&gp.owner, &gp.repo).is_some_and(|r| {
            shared
                .public
                .guard()
                .contains(&crate::public::key(&r.owner, &r.name))
        });
        git::authorize(&world, req, &gp, public, now)
    };
    let auth = match auth {
        Ok(a) => a,
        Err(refused) => {
            let message = match refused.status {
                401 if req.header("authorization").is_none() => MSG_CREDENTIALS_NEEDED,
                401 => git::MSG_BAD_TOKEN,
                403 => "Permission denied",
                _ => "Repository not found",
            };
            return lfs_error(refused.status, message);
        }
    };
    // path_info is `/{owner}/{repo}.git/...` with the canonical names.
    let repo_rel = auth
        .path_info
        .trim_start_matches('/')
        .rsplit_once(".git/")
        .map(|(r, _)| format!("{r}.git"))
        .unwrap_or_default();
    let repo_dir = shared.repo_root.join(repo_rel);
    match (req.method.as_str(), lp.rest.as_str(), oid) {
        ("POST", "objects/batch", _) => batch(shared, req, lp, &repo_dir),
        ("POST", "locks/verify", _) => {
            HttpResponse::new(200, LFS_JSON, json!({"ours": [], "theirs": []}).to_string())
        }
        (_, _, Some(oid)) if !valid_oid(oid) => lfs_error(422, "Invalid object id"),
        ("PUT", _, Some(oid)) => {
            let digest = hex(&Sha256::digest(&req.body));
            if digest != oid {
                return lfs_error(422, "The object's content does not match its oid");
            }
            let path = object_path(&repo_dir, oid);
            // Written beside and renamed, so a concurrent download never sees half an object.
            let partial = path.with_extension("partial");
            let stored = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&partial, &req.body))
                .and_then(|()| std::fs::rename(&partial, &path));
            match stored {
                Ok(()) => HttpResponse::empty(200),
                Err(e) => lfs_error(500, &format!("storing the object: {e}")),
            }
        }
        ("GET", _, Some(oid)) => match std::fs::read(object_path(&repo_dir, oid)) {
            Ok(bytes) => HttpResponse::new(200, "application/octet-stream", bytes),
            Err(_) => lfs_error(404, "Object does not exist"),
        },
        _ => lfs_error(404, "Not Found"),
    }
}

fn batch_is_upload(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v["operation"] == "upload")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The batch API (basic transfer only): upload actions for objects we lack, download actions
/// for objects we have, a per-object 404 otherwise.
fn batch(shared: &Shared, req: &HttpRequest, lp: &LfsPath, repo_dir: &Path) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<Value>(&req.body) else {
        return lfs_error(422, "Problems parsing JSON");
    };
    let operation = request["operation"].as_str().unwrap_or("");
    if operation != "upload" && operation != "download" {
        return lfs_error(422, "Invalid operation");
    }
    if let Some(transfers) = request["transfers"].as_array()
        && !transfers.iter().any(|t| t == "basic")
    {
        return lfs_error(422, "Only the basic transfer adapter is supported");
    }
    let Some(objects) = request["objects"].as_array() else {
        return lfs_error(422, "Missing objects");
    };
    // The object URLs carry the caller's own credentials (github.com hands out pre-signed
    // URLs; a header keeps this emulator's storage behind the same token rules).
    let authorization = req.header("authorization").unwrap_or_default();
    let mut answers = Vec::new();
    for object in objects {
        let oid = object["oid"].as_str().unwrap_or("");
        let size = object["size"].as_u64().unwrap_or(0);
        if !valid_oid(oid) {
            answers.push(json!({"oid": oid, "size": size,
                "error": {"code": 422, "message": "Invalid object id"}}));
            continue;
        }
        let href = format!(
            "{}/{}/{}.git/info/lfs/objects/{oid}",
            shared.base, lp.owner, lp.repo
        );
        let action =
            json!({"href": href, "header": {"Authorization": authorization}, "expires_in": 3600});
        let present = object_path(repo_dir, oid).is_file();
        answers.push(match (operation, present) {
            ("upload", true) => json!({"oid": oid, "size": size, "authenticated": true}),
            ("upload", false) => {
                json!({"oid": oid, "size": size, "authenticated": true, "actions": {"upload": action}})
            }
            (_, true) => {
                json!({"oid": oid, "size": size, "authenticated": true, "actions": {"download": action}})
            }
            (_, false) => json!({"oid": oid, "size": size,
                "error": {"code": 404, "message": "Object does not exist"}}),
        });
    }
    HttpResponse::new(
        200,
        LFS_JSON,
        json!({"transfer": "basic", "objects": answers, "hash_algo": "sha256"}).to_string(),
    )
}
