//! `git-credential-github-app`: see `--help`, README.md, and the library's module docs.
//!
//! On Linux with glibc the process enters at C's `main`, skipping Rust's runtime start-up, which
//! cost a cached `get` a sixth of its instructions; `startup` says what it did and what is kept.
#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]

#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    use git_credential_github_app::{cli, startup};
    startup::prepare();
    startup::finish(cli::main())
}

// The test harness of this file brings its own `main`.
#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
fn main() -> std::process::ExitCode {
    git_credential_github_app::cli::main()
}
