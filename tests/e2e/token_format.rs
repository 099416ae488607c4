//! GitHub's stateless installation tokens (`ghs_APPID_JWT`: several hundred characters, variable,
//! with dots) through every cache backend and git, and the `stateless_tokens` knob that sends
//! `X-GitHub-Stateless-S2S-Token`.

use local_github::{GitHub, TokenFormat};

use crate::cache::{in_secret_service, keyutils_keys_holding};
use crate::support::*;

fn stateless_world() -> GitHub {
    let gh = world();
    gh.set_token_format(TokenFormat::Stateless);
    gh
}

#[track_caller]
fn assert_stateless(token: &str) {
    assert!(token.starts_with("ghs_1001_"), "{token}");
    assert_eq!(token.matches('.').count(), 2, "{token}");
    assert!(token.len() > 300, "{} characters: {token}", token.len());
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "{token}"
    );
}

#[test]
fn stateless_tokens_through_the_file_cache_and_git() {
    let gh = stateless_world();
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert_stateless(&token);
    // Cached whole: the second get is a hit with the same long token.
    assert_eq!(token_of(&env.fill("octo/dotfiles.git")), token);
    assert_eq!(gh.mint_count(), 1);
    // git uses it for clone and push.
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    let d = env.home.join("octo-dotfiles").display().to_string();
    std::fs::write(env.home.join("octo-dotfiles/f.txt"), "x\n").unwrap();
    assert_ok(&env.git(&["-C", &d, "add", "f.txt"]));
    assert_ok(&env.git(&["-C", &d, "commit", "--quiet", "-m", "x"]));
    assert_ok(&env.git(&["-C", &d, "push", "--quiet", "origin", "main"]));
    assert_eq!(gh.mint_count(), 1);
    // Tokens differ in length from mint to mint (the claims vary): nothing assumes one length.
    let other = gh.mint_token(11).unwrap().token;
    assert_stateless(&other);
    assert_ne!(other.len(), token.len());
}

#[test]
fn stateless_tokens_through_the_kernel_keyring() {
    if !have(&["keyctl"]) {
        return;
    }
    let gh = stateless_world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "keyring"]);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert_stateless(&token);
    assert_eq!(token_of(&env.fill("octo/dotfiles.git")), token);
    assert_eq!(gh.mint_count(), 1, "the second get came from the keyring");
    assert_eq!(keyutils_keys_holding(&env, &token).len(), 1);
    assert!(!env.cache_dir().join("tokens").exists());
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_eq!(gh.mint_count(), 1);
}

#[test]
fn stateless_tokens_through_the_secret_service() {
    if !have(&[
        "dbus-run-session",
        "gnome-keyring-daemon",
        "secret-tool",
        "keyctl",
    ]) {
        return;
    }
    let gh = stateless_world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "keyring"]);
    let fill = format!(
        "printf 'protocol=http\\nhost={}\\npath=octo/dotfiles.git\\n' | git credential fill",
        env.host
    );
    // Fill, drop the kernel keyring's copy, fill again: the second answer comes from the
    // Secret Service blob.
    let out = in_secret_service(
        &env,
        &format!(
            "{fill} >first\nfor k in $(keyctl rlist @u); do keyctl rdescribe $k | grep -q git-credential-github-app: && keyctl invalidate $k || true; done\nexport GIT_CREDENTIAL_GITHUB_APP_TRACE=1\n{fill}\nsecret-tool search --all service git-credential-github-app 2>&1\ncat first\n"
        ),
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let tokens: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("password="))
        .collect();
    assert_eq!(tokens.len(), 2, "{text}");
    assert_eq!(tokens[0], tokens[1]);
    assert_stateless(tokens[0]);
    assert!(
        text.contains(&format!("secret = {{\"v\":1,\"token\":\"{}\"", tokens[0])),
        "{text}"
    );
    assert!(
        stderr(&out).contains("cache hit in secret-service"),
        "{}",
        stderr(&out)
    );
    assert_eq!(gh.mint_count(), 1);
}

/// The header the last token request carried.
fn last_mint_header(gh: &GitHub) -> Option<String> {
    gh.requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "POST" && r.path.ends_with("/access_tokens"))
        .expect("a token request")
        .stateless_s2s_token
}

#[test]
fn the_stateless_tokens_knob_sends_github_s_override_header() {
    // The server's rollout gives classic tokens; `enabled` in the config file asks for stateless.
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.write_config(&[], "stateless_tokens = \"enabled\"\n");
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert_stateless(&token);
    assert_eq!(last_mint_header(&gh).as_deref(), Some("enabled"));
    assert_ok(&env.clone_repo("octo", "dotfiles"));

    // The rollout gives stateless ones; `disabled` in the environment wins over the file.
    gh.set_token_format(TokenFormat::Stateless);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_STATELESS_TOKENS", "disabled");
    let token = token_of(&env.fill("acme/widgets.git"));
    assert_eq!(token.len(), 40, "{token}");
    assert_eq!(last_mint_header(&gh).as_deref(), Some("disabled"));

    // By default no header: whatever the rollout gives.
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("acme/widgets.git"));
    assert_stateless(&token);
    assert_eq!(last_mint_header(&gh), None);
}

#[test]
fn a_bad_stateless_tokens_value_is_one_clear_line() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_STATELESS_TOKENS", "yes");
    let out = env.helper(
        &["get"],
        format!("protocol=http\nhost={}\npath=octo/dotfiles.git\n", env.host).as_bytes(),
    );
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "git-credential-github-app: GIT_CREDENTIAL_GITHUB_APP_STATELESS_TOKENS: unknown token format 'yes': use default, enabled or disabled\n"
    );
    assert_eq!(gh.mint_count(), 0);
}
