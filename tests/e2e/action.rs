//! The GitHub Action (`action.yml`, `revoke/action.yml`), its steps run as written: each step's
//! `run:` line with the `env:` it declares (inputs substituted as the runner does) and the runner's
//! files (GITHUB_ENV, GITHUB_PATH, RUNNER_TEMP), in a job whose checkout left its token header in
//! a file the repository's config includes (actions/checkout v5 and newer). The install step
//! (cargo install) runs in .ci/run, not here.

use base64::Engine;
use local_github::{Account, App, GitHub, Installation};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::*;

/// One step of a composite action, as written in its action.yml.
#[derive(Debug)]
struct Step {
    name: String,
    condition: Option<String>,
    env: Vec<(String, String)>,
    run: String,
}

/// The inputs' defaults and the steps of an action.yml (the subset of YAML these files use: one
/// `key: value` per line, two-space indents).
fn parse_action(path: &Path) -> (BTreeMap<String, String>, Vec<Step>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut defaults = BTreeMap::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut section = "";
    let mut input = String::new();
    let mut in_env = false;
    let unquote = |v: &str| v.trim().trim_matches('"').to_owned();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let (key, value) = line.trim().split_once(':').unwrap_or((line.trim(), ""));
        match (indent, key) {
            (0, _) => section = if key == "inputs" { "inputs" } else { "" },
            (2, "steps") => section = "steps",
            (2, k) if section == "inputs" => input = k.to_owned(),
            (4, "default") if section == "inputs" => {
                defaults.insert(input.clone(), unquote(value));
            }
            (4, "- name") if section == "steps" => {
                in_env = false;
                steps.push(Step {
                    name: value.trim().to_owned(),
                    condition: None,
                    env: Vec::new(),
                    run: String::new(),
                })
            }
            (6, k) if section == "steps" => {
                let step = steps.last_mut().unwrap();
                in_env = k == "env";
                match k {
                    "if" => step.condition = Some(value.trim().to_owned()),
                    "run" => step.run = value.trim().to_owned(),
                    "shell" => assert_eq!(value.trim(), "bash", "{}", step.name),
                    _ => {}
                }
            }
            (8, k) if in_env => {
                let step = steps.last_mut().unwrap();
                step.env.push((k.to_owned(), value.trim().to_owned()));
            }
            _ => {}
        }
    }
    (defaults, steps)
}

/// `${{ inputs.NAME }}` with the workflow's `with:` values, else the input's default.
fn expand(value: &str, inputs: &BTreeMap<String, String>) -> String {
    let mut out = value.to_owned();
    while let Some(start) = out.find("${{ inputs.") {
        let end = out[start..].find(" }}").unwrap() + start;
        let name = out[start + "${{ inputs.".len()..end].to_owned();
        let v = inputs.get(&name).cloned().unwrap_or_default();
        out.replace_range(start..end + 3, &v);
    }
    out
}

/// The runner for one job: its temp dir, its GITHUB_ENV and GITHUB_PATH files.
struct Runner<'a> {
    env: &'a Env,
    path: String,
    temp: PathBuf,
    github_env: PathBuf,
    workspace: PathBuf,
}

impl Runner<'_> {
    /// Run the steps of the action in `dir` (relative to the repository) with `with`.
    fn uses(&self, dir: &str, with: &[(&str, &str)]) -> Vec<std::process::Output> {
        let action_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let (mut inputs, steps) = parse_action(&action_path.join("action.yml"));
        for (k, v) in with {
            inputs.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut outputs = Vec::new();
        for step in steps {
            if let Some(condition) = &step.condition {
                // The only form these files use: inputs.NAME == 'VALUE'.
                let (left, right) = condition.split_once(" == ").unwrap();
                let name = left.strip_prefix("inputs.").unwrap();
                if inputs.get(name).map(String::as_str) != Some(right.trim_matches('\'')) {
                    continue;
                }
            }
            let mut cmd = self.env.command("bash");
            cmd.current_dir(&self.workspace)
                .args(["-c", &step.run])
                .env("PATH", &self.path)
                .env("GITHUB_ACTION_PATH", &action_path)
                .env("GITHUB_WORKSPACE", &self.workspace)
                .env("RUNNER_TEMP", &self.temp)
                .env("GITHUB_ENV", &self.github_env)
                .env("GITHUB_PATH", self.temp.join("github_path"));
            // What earlier steps wrote to GITHUB_ENV, then the step's own env.
            for line in std::fs::read_to_string(&self.github_env)
                .unwrap_or_default()
                .lines()
            {
                let (k, v) = line.split_once('=').unwrap();
                cmd.env(k, v);
            }
            for (k, v) in &step.env {
                cmd.env(k, expand(v, &inputs));
            }
            let out = run(&mut cmd, b"");
            assert_ok(&out);
            outputs.push(out);
        }
        outputs
    }

    fn git(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.env.command("git");
        cmd.current_dir(&self.workspace)
            .args(args)
            .env("PATH", &self.path);
        for line in std::fs::read_to_string(&self.github_env)
            .unwrap_or_default()
            .lines()
        {
            let (k, v) = line.split_once('=').unwrap();
            cmd.env(k, v);
        }
        run(&mut cmd, b"")
    }
}

#[test]
fn the_action_configures_git_for_the_app_and_the_revoke_action_undoes_it() {
    let gh = GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .app(App::new(15368, "github-actions"))
        .account(Account::org("acme"))
        .account(Account::org("beta"))
        .repo("acme", "site")
        .repo("acme", "tools")
        .repo("beta", "shared")
        .installation(Installation::new(11, 1001, "acme").all())
        .installation(Installation::new(22, 1001, "beta").all())
        .installation(Installation::new(99, 15368, "acme").selected(["site"]))
        .start()
        .unwrap();
    let env = Env::new(&gh, 1001);
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = CI\n\temail = ci@example.com\n",
    )
    .unwrap();
    let bin = env.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(HELPER, bin.join("git-credential-github-app")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let temp = env.home.join("runner/_temp");
    std::fs::create_dir_all(&temp).unwrap();

    // actions/checkout (v5 and newer): the job token's header in a file under RUNNER_TEMP that
    // the repository's config includes.
    let workspace = env.home.join("work/site");
    let ws = workspace.display().to_string();
    let job_token = gh.mint_token(99).unwrap().token;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{job_token}"));
    let key = format!("http.{}/.extraheader", gh.url());
    let header = format!("AUTHORIZATION: basic {basic}");
    assert_ok(&env.git(&[
        "-c",
        &format!("{key}={header}"),
        "clone",
        "--quiet",
        &format!("{}/acme/site.git", gh.url()),
        &ws,
    ]));
    let credentials = temp.join("git-credentials-5e1d.config");
    let cred = credentials.display().to_string();
    assert_ok(&env.git(&["config", "--file", &cred, &key, &header]));
    assert_ok(&env.git(&[
        "-C",
        &ws,
        "config",
        &format!("includeIf.gitdir:{ws}/.git.path"),
        &cred,
    ]));

    let runner = Runner {
        env: &env,
        path,
        temp: temp.clone(),
        github_env: temp.join("github_env"),
        workspace: workspace.clone(),
    };
    let pem = gh.app(1001).private_key_pem();
    let before = runner.git(&["ls-remote", &format!("{}/beta/shared.git", gh.url())]);
    assert!(!before.status.success(), "the header answers, not the app");

    let outputs = runner.uses(
        ".",
        &[
            ("app-id", "1001"),
            ("private-key", &pem),
            ("host", &gh.host()),
            ("install", "false"),
        ],
    );
    let said = stdout(outputs.last().unwrap());
    assert!(
        said.contains(&format!("removed {key} from {cred}\n")),
        "{said}"
    );
    // The key is in a private file, not in git's config nor in the job's environment.
    let github_env = std::fs::read_to_string(&runner.github_env).unwrap();
    let action_dir = github_env
        .lines()
        .find_map(|l| l.strip_prefix("GCGA_ACTION_DIR="))
        .unwrap()
        .to_owned();
    assert!(
        github_env.contains("GIT_TERMINAL_PROMPT=0\n"),
        "{github_env}"
    );
    assert!(!github_env.contains("BEGIN"), "{github_env}");
    let key_file = Path::new(&action_dir).join("app.pem");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap().trim(),
        pem.trim()
    );
    let gitconfig = std::fs::read_to_string(env.home.join(".gitconfig")).unwrap();
    assert!(!gitconfig.contains("BEGIN"), "{gitconfig}");
    assert!(
        gitconfig.contains(&key_file.display().to_string()),
        "{gitconfig}"
    );

    // Later steps: git reaches the other organisation's and the repository's owner's repositories.
    assert_ok(&runner.git(&["ls-remote", &format!("{}/beta/shared.git", gh.url())]));
    assert_ok(&runner.git(&["fetch", "--quiet", "origin"]));
    let minted: Vec<String> = gh
        .tokens()
        .into_iter()
        .filter(|t| t.app_id == 1001)
        .map(|t| t.token)
        .collect();
    assert_eq!(minted.len(), 2, "one token per organisation");
    assert!(minted.iter().all(|t| gh.token_is_valid(t)));

    // The last step (if: always()): tokens revoked, setup undone, key gone.
    runner.uses("revoke", &[]);
    assert!(
        minted.iter().all(|t| !gh.token_is_valid(t)),
        "the job's tokens no longer work"
    );
    assert!(gh.token_is_valid(&job_token), "GITHUB_TOKEN is not ours");
    assert!(!Path::new(&action_dir).exists());
    let gitconfig = std::fs::read_to_string(env.home.join(".gitconfig")).unwrap_or_default();
    assert!(
        !gitconfig.contains("git-credential-github-app"),
        "{gitconfig}"
    );
    // Run again (a job whose configure step never ran): nothing to do, no failure.
    let mut cmd = env.command("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action/revoke"));
    let out = run(&mut cmd, b"");
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "Nothing to revoke: the configure step of git-credential-github-app did not run in this job.\n"
    );
}
