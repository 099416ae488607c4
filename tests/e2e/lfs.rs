//! git-lfs through the helper: git-lfs asks `git credential fill` after the LFS API's 401
//! (`LFS-Authenticate: Basic`), then uploads and downloads with the installation token.

use sha2::{Digest, Sha256};

use crate::support::*;

#[test]
fn git_lfs_pushes_an_object_and_clones_it_back_through_the_helper() {
    if !have(&["git-lfs"]) {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    assert_ok(&env.git(&["lfs", "install", "--skip-repo"]));
    assert_ok(&env.clone_repo("acme", "widgets"));
    let dir = env.home.join("acme-widgets");
    let d = dir.display().to_string();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("model.bin"), &content).unwrap();
    assert_ok(&env.git(&["-C", &d, "lfs", "track", "*.bin"]));
    assert_ok(&env.git(&["-C", &d, "add", ".gitattributes", "model.bin"]));
    assert_ok(&env.git(&["-C", &d, "commit", "--quiet", "-m", "lfs object"]));
    let log = crate::ecosystems::record_helper_input(&env);
    assert_ok(&env.git(&["-C", &d, "push", "--quiet", "origin", "main"]));
    // git-lfs's own `git credential fill` (Debian's 3.3: no capabilities, no challenge; the
    // repository path without `/info/lfs`), then `approve` once the batch worked.
    let input = std::fs::read_to_string(&log).unwrap();
    assert!(
        input.contains(&format!(
            "== get\nprotocol=http\nhost={}\npath=acme/widgets.git\n== store\n",
            gh.host()
        )),
        "{input}"
    );

    // The repository holds a pointer; the LFS store holds the bytes.
    let oid: String = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bare = gh.repo_path("acme", "widgets");
    let pointer = std::process::Command::new("git")
        .args([
            "--git-dir",
            &bare.display().to_string(),
            "show",
            "main:model.bin",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&pointer),
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
            content.len()
        )
    );
    let stored = bare.join(format!("lfs/objects/{}/{}/{oid}", &oid[..2], &oid[2..4]));
    assert_eq!(std::fs::read(stored).unwrap(), content);

    // A fresh clone smudges the object back, with the token the helper cached.
    let url = format!("{}/acme/widgets.git", env.git_url);
    assert_ok(&env.git(&["clone", "--quiet", &url, "again"]));
    assert_eq!(
        std::fs::read(env.home.join("again/model.bin")).unwrap(),
        content
    );

    let batch: Vec<_> = gh
        .requests()
        .into_iter()
        .filter(|r| r.path == "/acme/widgets.git/info/lfs/objects/batch")
        .collect();
    assert!(
        batch
            .iter()
            .any(|r| r.status == 401 && r.auth_scheme.is_none()),
        "git-lfs first asks without credentials: {batch:?}"
    );
    assert!(
        batch
            .iter()
            .filter(|r| r.status == 200 && r.auth_scheme.as_deref() == Some("Basic"))
            .count()
            >= 2,
        "an upload and a download batch with the token: {batch:?}"
    );
    assert_eq!(gh.mint_count(), 1, "git and git-lfs shared one token");
}

#[test]
fn git_lfs_upload_is_refused_without_contents_write() {
    if !have(&["git-lfs"]) {
        return;
    }
    let gh = world();
    gh.set_installation_permissions(11, [("contents", "read"), ("metadata", "read")]);
    let env = Env::new(&gh, 1001);
    assert_ok(&env.git(&["lfs", "install", "--skip-repo"]));
    assert_ok(&env.clone_repo("acme", "widgets"));
    let d = env.home.join("acme-widgets").display().to_string();
    std::fs::write(env.home.join("acme-widgets/data.bin"), b"\x00\x01binary").unwrap();
    assert_ok(&env.git(&["-C", &d, "lfs", "track", "*.bin"]));
    assert_ok(&env.git(&["-C", &d, "add", ".gitattributes", "data.bin"]));
    assert_ok(&env.git(&["-C", &d, "commit", "--quiet", "-m", "lfs"]));
    // `git push` is refused by git's own receive-pack first; `git lfs push` meets the LFS API.
    let out = env.git(&["-C", &d, "lfs", "push", "origin", "main"]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.path.ends_with("/info/lfs/objects/batch") && r.status == 403),
        "{:?}\n{}",
        gh.requests(),
        stderr(&out)
    );
}
