mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use local_github::{App, WorldFile};
use serde_json::json;

fn agent_get(url: &str) -> serde_json::Value {
    let r = call("GET", url, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn serve_prints_the_url_and_serves_the_world_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A key we provide, and one the emulator generates for us.
    let provided = App::new(4004, "given-app");
    std::fs::write(dir.path().join("given.pem"), provided.private_key_pem()).unwrap();
    let world = json!({
        "apps": [
            {"id": 1001, "slug": "demo-app", "name": "Demo App", "generate_key_to": "keys/demo.pem"},
            {"id": 4004, "slug": "given-app", "client_id": "Iv23liGIVENGIVENGIVE", "private_key_path": "given.pem"}
        ],
        "accounts": [{"login": "acme", "type": "Organization"}, {"login": "octo", "type": "User", "id": 42}],
        "repos": ["acme/widgets", "octo/dotfiles"],
        "installations": [
            {"id": 11, "app_id": 1001, "account": "acme", "repository_selection": "selected",
             "repositories": ["widgets"], "permissions": {"contents": "write", "metadata": "read"}},
            {"id": 12, "app_id": 4004, "account": "octo"}
        ],
        "token_lifetime_secs": 600,
        "token_format": "stateless"
    });
    let world_path = dir.path().join("world.json");
    std::fs::write(&world_path, world.to_string()).unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-github"))
        .args(["serve", "--world"])
        .arg(&world_path)
        .args(["--addr", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let key_path = dir.path().join("keys/demo.pem");
    let pem = std::fs::read_to_string(&key_path).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(state.join("acme/widgets.git/HEAD").exists());

    // Mint with the generated key, and with the provided one via its client id.
    let demo = App::with_key_pem(1001, "demo-app", &pem).unwrap();
    let now = real_now();
    let r = call(
        "POST",
        &format!("{url}/api/v3/app/installations/11/access_tokens"),
        Some(&format!("Bearer {}", demo.jwt_at(now))),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_1001_"));
    let exp = humantime::parse_rfc3339(r.json()["expires_at"].as_str().unwrap()).unwrap();
    let exp = exp.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((exp - (now + 600)).abs() <= 2);
    let jwt = provided
        .sign_jwt(&json!({"iat": now - 60, "exp": now + 540, "iss": "Iv23liGIVENGIVENGIVE"}));
    let r = call(
        "GET",
        &format!("{url}/api/v3/users/octo/installation"),
        Some(&format!("Bearer {jwt}")),
        None,
    );
    assert_eq!((r.status, r.json()["id"].clone()), (200, json!(12)));
    assert_eq!(r.json()["account"]["id"], 42);

    // Git over the binary.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let host = url.trim_start_matches("http://");
    ok(&git(
        &work,
        &[
            "clone",
            "-q",
            &format!("http://x-access-token:{token}@{host}/acme/widgets.git"),
            "w",
        ],
    ));

    let stats = agent_get(&format!("{url}/_emulator/stats"));
    assert_eq!(stats["mints"], 1);
    assert_eq!(stats["lookups"], 1);
    assert!(stats["git"].as_u64().unwrap() >= 2);
    let log = agent_get(&format!("{url}/_emulator/requests"));
    assert!(log.as_array().unwrap().len() >= 4);

    // SIGTERM → clean exit.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn keygen_writes_a_private_pkcs1_or_pkcs8_key() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, begin) in [
        (None, "-----BEGIN RSA PRIVATE KEY-----"),
        (Some("--pkcs8"), "-----BEGIN PRIVATE KEY-----"),
    ] {
        let out = dir.path().join("k.pem");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_local-github"));
        cmd.args(["keygen", "--out"]).arg(&out);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pem = std::fs::read_to_string(&out).unwrap();
        assert!(pem.starts_with(begin));
        let app = App::with_key_pem(1, "k", &pem).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stderr).trim(), app.fingerprint());
    }
}

#[test]
fn world_file_errors_are_reported() {
    assert!(
        WorldFile::parse(r#"{"apps": [{"id": 1, "slug": "x"}]}"#)
            .unwrap()
            .into_builder(std::path::Path::new("."))
            .is_err()
    );
    assert!(WorldFile::parse(r#"{"bogus": 1}"#).is_err());
    let o = Command::new(env!("CARGO_BIN_EXE_local-github"))
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
