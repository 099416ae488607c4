//! The LFS batch API and basic transfer, with git's token rules.

mod common;

use base64::Engine;
use common::*;
use sha2::{Digest, Sha256};

fn basic(token: &str) -> String {
    let raw = format!("x-access-token:{token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn token(gh: &local_github::GitHub, app: u64, inst: u64) -> String {
    let r = mint(gh, app, inst, None);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_string()
}

fn batch(gh: &local_github::GitHub, op: &str, oid: &str, size: usize, auth: Option<&str>) -> Resp {
    let body = serde_json::json!({"operation": op, "transfers": ["basic"],
        "objects": [{"oid": oid, "size": size}]});
    call(
        "POST",
        &format!("{}/acme/widgets.git/info/lfs/objects/batch", gh.url()),
        auth,
        Some(&body.to_string()),
    )
}

#[test]
fn batch_upload_download_and_refusals() {
    let gh = world();
    let content = b"large file content\n".repeat(100);
    let oid: String = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let r = batch(&gh, "upload", &oid, content.len(), None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("LFS-Authenticate"), Some("Basic realm=\"GitHub\""));
    assert_eq!(r.message(), "Credentials needed");

    let bad = batch(
        &gh,
        "download",
        &oid,
        content.len(),
        Some(&basic("ghs_nope")),
    );
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.message(),
        "Invalid username or token. Password authentication is not supported for Git operations."
    );

    // A read-only installation may download but not upload.
    let reader = basic(&token(&gh, 3003, 31));
    assert_eq!(
        batch(&gh, "upload", &oid, content.len(), Some(&reader)).status,
        403
    );
    // A token for another owner does not see the repository.
    let octo = basic(&token(&gh, 1001, 12));
    assert_eq!(
        batch(&gh, "upload", &oid, content.len(), Some(&octo)).status,
        404
    );

    let writer = basic(&token(&gh, 1001, 11));
    let r = batch(&gh, "download", &oid, content.len(), Some(&writer));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["objects"][0]["error"]["code"], 404);

    let r = batch(&gh, "upload", &oid, content.len(), Some(&writer));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.git-lfs+json")
    );
    let upload = &r.json()["objects"][0]["actions"]["upload"];
    let href = upload["href"].as_str().unwrap().to_string();
    assert_eq!(
        href,
        format!("{}/acme/widgets.git/info/lfs/objects/{oid}", gh.url())
    );
    assert_eq!(upload["header"]["Authorization"], writer.as_str());

    // The upload URL checks the content against the oid, then keeps it in the bare repository.
    let put = |body: &[u8], auth: &str| {
        let req = ureq::http::Request::builder()
            .method("PUT")
            .uri(&href)
            .header("Authorization", auth)
            .body(body.to_vec())
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent.run(req).unwrap().status().as_u16()
    };
    assert_eq!(put(b"other bytes", &writer), 422);
    assert_eq!(put(&content, &reader), 403);
    assert_eq!(put(&content, &writer), 200);
    let stored = gh
        .repo_path("acme", "widgets")
        .join("lfs/objects")
        .join(&oid[..2])
        .join(&oid[2..4])
        .join(&oid);
    assert_eq!(std::fs::read(stored).unwrap(), content);

    // Now present: nothing to upload, a download action for a reader.
    let r = batch(&gh, "upload", &oid, content.len(), Some(&writer));
    assert!(
        r.json()["objects"][0].get("actions").is_none(),
        "{}",
        r.body
    );
    let r = batch(&gh, "download", &oid, content.len(), Some(&reader));
    let download = &r.json()["objects"][0]["actions"]["download"];
    assert_eq!(download["href"].as_str(), Some(href.as_str()));
    let got = call("GET", &href, Some(&reader), None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body.as_bytes(), &content[..]);
    assert_eq!(call("GET", &href, None, None).status, 401);
}
