//! `local-github serve --world world.json [--addr 127.0.0.1:0] [--state-dir DIR]`
//! `local-github keygen --out PATH [--pkcs8]`
//!
//! `serve` prints exactly one line, the base URL (`http://127.0.0.1:PORT`), then
//! serves until SIGTERM or SIGINT, after which it removes its temporary
//! repositories (unless `--state-dir` was given) and exits 0.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use local_github::{AppKey, WorldFile, write_private};

const USAGE: &str = "usage:
  local-github serve --world FILE [--addr 127.0.0.1:0] [--state-dir DIR]
  local-github keygen --out PATH [--pkcs8]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("keygen") => keygen(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-github: {e}");
            ExitCode::from(2)
        }
    }
}

/// Parses `--name value` pairs and bare `--flag`s.
fn options(
    args: &[String],
    with_value: &[&str],
    flags: &[&str],
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if with_value.contains(&name.as_str()) {
            let v = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?,
            };
            out.push((name, v));
        } else if flags.contains(&name.as_str()) && inline.is_none() {
            out.push((name, String::new()));
        } else {
            return Err(format!("unexpected argument {a:?}\n{USAGE}"));
        }
    }
    Ok(out)
}

fn get<'a>(opts: &'a [(String, String)], name: &str) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn serve(args: &[String]) -> Result<(), String> {
    let opts = options(args, &["--world", "--addr", "--state-dir"], &[])?;
    let world_path =
        PathBuf::from(get(&opts, "--world").ok_or(format!("--world is required\n{USAGE}"))?);
    let world = WorldFile::load(&world_path).map_err(|e| e.to_string())?;
    let base_dir = world_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut builder = world.into_builder(&base_dir).map_err(|e| e.to_string())?;
    if let Some(a) = get(&opts, "--addr") {
        let addr: SocketAddr = a.parse().map_err(|e| format!("--addr {a}: {e}"))?;
        builder = builder.addr(addr);
    }
    if let Some(d) = get(&opts, "--state-dir") {
        builder = builder.state_dir(d);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("installing the signal handler: {e}"))?;
    let gh = builder.start().map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", gh.url()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    let _ = rx.recv();
    drop(gh);
    Ok(())
}

fn keygen(args: &[String]) -> Result<(), String> {
    let opts = options(args, &["--out"], &["--pkcs8"])?;
    let out = PathBuf::from(get(&opts, "--out").ok_or(format!("--out is required\n{USAGE}"))?);
    let key = AppKey::generate();
    let pem = if get(&opts, "--pkcs8").is_some() {
        key.private_key_pkcs8_pem()
    } else {
        key.private_key_pem()
    };
    write_private(&out, pem).map_err(|e| e.to_string())?;
    eprintln!("{}", key.fingerprint());
    Ok(())
}
