//! Hosts: the name a request is routed by (lower case, without the protocol's default port), and
//! the host an API URL belongs to.

use super::{quoted, secret_kind};
use anyhow::{Result, anyhow, bail};

/// A REST API base (`https://ghe.example.com/api/v3`, no trailing slash), checked once; its
/// scheme is kept, so that commands ask with the protocol git uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBase(String, &'static str);

impl ApiBase {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https`, or `http` (loopback hosts only).
    pub fn scheme(&self) -> &'static str {
        self.1
    }

    /// The API base of a host given with a scheme (`--host https://127.0.0.1:8443`): that
    /// host's default API base on that scheme. `None` without a scheme.
    pub fn of_host(text: &str, host: &Host, setting: &str) -> Result<Option<ApiBase>> {
        match text.trim().split_once("://") {
            Some((scheme, _)) => {
                check_api_url(&host.default_api_url(&scheme.to_ascii_lowercase()), setting)
                    .map(Some)
            }
            None => Ok(None),
        }
    }
}

/// An API URL must be `https://host[:port][/path]` (plain http only on loopback hosts): no
/// query, fragment, user name or password, nothing but printable ASCII. `setting` names where it
/// came from; the value itself is never echoed (it may be a pasted secret).
pub fn check_api_url(url: &str, setting: &str) -> Result<ApiBase> {
    let url = url.trim().trim_end_matches('/');
    let refuse = |why: &str| -> Result<ApiBase> {
        bail!("{setting} {why}; give the REST API base, like https://ghe.example.com/api/v3")
    };
    if let Some(what) = secret_kind(url) {
        return refuse(&format!("is {what} (not shown), not a URL"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return refuse("contains spaces, control or non-ASCII characters");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return refuse("is not a URL (no https://)");
    };
    if rest.contains(['?', '#']) {
        return refuse("has a query or fragment (?… or #…), which an API base cannot have");
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return refuse("contains a user name or password (…@), which the helper never sends");
    }
    let host = match Host::parse(authority) {
        Ok(host) => host,
        Err(_) => return refuse("does not have a valid host name"),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(ApiBase(format!("https://{rest}"), "https")),
        "http" if host.is_loopback() => Ok(ApiBase(format!("http://{rest}"), "http")),
        "http" => refuse("is plain http; only https is allowed (http only for loopback hosts)"),
        _ => refuse("must start with https://"),
    }
}

/// A host as compared in routing: lower case, without the protocol's default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    /// Accepts `github.com`, `GitHub.com:443`, `https://ghe.example.com/`, `127.0.0.1:8080`.
    pub fn parse(text: &str) -> Result<Host> {
        let text = text.trim();
        if let Some(what) = secret_kind(text) {
            bail!("the host is {what} (not shown), not a host name");
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) => (Some(s), r),
            None => (None, text),
        };
        let host = rest.trim_end_matches('/');
        if split_host_port(host).is_none() {
            bail!("{} is not a host name", quoted(text));
        }
        Ok(Host::normalize(scheme.unwrap_or("https"), host))
    }

    /// The form used for comparison, for a host as git sends it with `protocol`.
    pub fn normalize(protocol: &str, host: &str) -> Host {
        let lower = host.to_ascii_lowercase();
        let default_port = if protocol == "http" { ":80" } else { ":443" };
        Host(
            lower
                .strip_suffix(default_port)
                .map(str::to_owned)
                .unwrap_or(lower),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without port or IPv6 brackets.
    pub fn name(&self) -> &str {
        split_host_port(&self.0).map_or(self.0.as_str(), |(name, _)| name)
    }

    /// 127.0.0.0/8, `::1` and `localhost`: the only hosts plain http is allowed for. Only a
    /// well-formed host counts: `[::1]evil.example` is not loopback.
    pub fn is_loopback(&self) -> bool {
        let Some((name, _)) = split_host_port(&self.0) else {
            return false;
        };
        if name == "localhost" {
            return true;
        }
        name.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }

    /// The REST API base for this host: github.com → api.github.com, `SUB.ghe.com` → api.SUB.ghe.com,
    /// anything else is GitHub Enterprise Server at `PROTOCOL://HOST/api/v3`.
    pub fn default_api_url(&self, protocol: &str) -> String {
        let name = self.name();
        if name == "github.com" && self.0 == "github.com" {
            "https://api.github.com".to_owned()
        } else if name.ends_with(".ghe.com") && self.0 == name {
            format!("https://api.{name}")
        } else {
            format!("{protocol}://{}/api/v3", self.0)
        }
    }
}

/// `name[:port]` or `[ipv6][:port]` split into name (without brackets) and port; `None` unless
/// the text is exactly that shape: a DNS name or IPv4 address of letters, digits, `-`, `.` and
/// `_`; an IPv6 address inside brackets; a port of digits.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (inside, port)
    } else {
        match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    let name_ok = text.starts_with('[')
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
    name_ok.then_some((name, port))
}

/// The host an app serves when only its API URL is given: `api.github.com` → `github.com`,
/// `api.SUB.ghe.com` → `SUB.ghe.com`, `https://H/api/v3` → `H` (GitHub Enterprise Server, or the
/// local test GitHub over loopback http). Without an API URL: `github.com`.
pub fn host_for(api_url: Option<&str>) -> Result<Host> {
    let Some(url) = api_url else {
        return Host::parse("github.com");
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("the API URL has no scheme"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = Host::parse(&format!("{scheme}://{authority}"))?;
    let name = host.as_str();
    if name == "api.github.com" {
        return Host::parse("github.com");
    }
    if let Some(sub) = name.strip_prefix("api.")
        && sub.ends_with(".ghe.com")
    {
        return Host::parse(sub);
    }
    Ok(host)
}
