//! Whether this process runs in a container, for `cache = auto`: the Linux kernel's user keyring
//! belongs to a user id on the host's kernel, not to a container, so another container running as
//! the same uid on the same host (Kubernetes pods without user namespaces and with seccomp
//! unconfined; Docker's default seccomp profile blocks keyctl) could read tokens cached there.
//! In a container, `auto` therefore caches in the container's own file system only.

use std::path::Path;

/// Why this looks like a container (`/.dockerenv`, …), or `None`.
pub fn detected() -> Option<&'static str> {
    detect(
        &|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()),
        &|p| Path::new(p).exists(),
    )
}

fn detect(env: &dyn Fn(&str) -> bool, exists: &dyn Fn(&str) -> bool) -> Option<&'static str> {
    if env("KUBERNETES_SERVICE_HOST") {
        Some("KUBERNETES_SERVICE_HOST is set (a Kubernetes pod)")
    } else if exists("/.dockerenv") {
        Some("/.dockerenv exists (a Docker container)")
    } else if exists("/run/.containerenv") {
        Some("/run/.containerenv exists (a Podman container)")
    } else if env("container") {
        Some("$container is set (systemd-nspawn, Podman, LXC)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_by_their_marks() {
        let none = |_: &str| false;
        assert_eq!(detect(&none, &none), None);
        assert!(
            detect(&|n| n == "KUBERNETES_SERVICE_HOST", &none)
                .unwrap()
                .contains("Kubernetes")
        );
        assert!(
            detect(&none, &|p| p == "/.dockerenv")
                .unwrap()
                .contains("Docker")
        );
        assert!(
            detect(&none, &|p| p == "/run/.containerenv")
                .unwrap()
                .contains("Podman")
        );
        assert!(detect(&|n| n == "container", &none).is_some());
    }
}
