//! Which proxy a request goes through, decided as curl (and so git) decides it:
//! `https_proxy`/`HTTPS_PROXY` for https, `http_proxy` for http (never the upper-case
//! `HTTP_PROXY`, which a CGI request can set), then `all_proxy`/`ALL_PROXY`; none when
//! `no_proxy`/`NO_PROXY` names the host — `*`, a domain and its subdomains (`example.com`,
//! `.example.com`), an IP address, or a CIDR range (`127.0.0.0/8`, `::1/128`). A proxy URL may
//! have no scheme (`user:pass@proxy:3128`, http meant), as curl accepts. AWS's instance and
//! container metadata are never asked through a proxy (as botocore), see [`direct`].

use std::net::IpAddr;

/// A proxy a request goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// As the environment gives it (it may hold a password: show [`Proxy::shown`]).
    url: String,
    /// The variable it came from.
    pub from: &'static str,
}

impl Proxy {
    /// For ureq; `None` for a URL ureq cannot parse (the request then goes direct, as ureq's
    /// own reading of the environment would).
    pub fn to_ureq(&self) -> Option<ureq::Proxy> {
        ureq::Proxy::new(self.url.trim()).ok()
    }

    /// The proxy URL with any password masked: `http://user:[masked]@proxy:3128`.
    pub fn shown(&self) -> String {
        shown(&self.url)
    }
}

/// The proxy for a request to `url`, from the process environment.
pub fn for_url(url: &str) -> Option<Proxy> {
    for_url_in(url, &|name| std::env::var(name).ok())
}

/// The agent setting for a request to `url`: the proxy, or none (ureq would otherwise read the
/// environment itself, by other rules).
pub fn ureq_proxy(url: &str) -> Option<ureq::Proxy> {
    for_url(url).and_then(|p| p.to_ureq())
}

/// The agent setting for a request that never goes through a proxy (AWS's instance and
/// container metadata: the credentials they hand out must not cross a proxy, and botocore does
/// not send them through one either).
pub fn direct() -> Option<ureq::Proxy> {
    None
}

/// [`for_url`] with the environment given.
pub fn for_url_in(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<Proxy> {
    let (scheme, host) = scheme_and_host(url)?;
    let candidates: &[&'static str] = match scheme.as_str() {
        "https" => &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
        "http" => &["http_proxy", "all_proxy", "ALL_PROXY"],
        _ => &["all_proxy", "ALL_PROXY"],
    };
    let (from, value) = candidates.iter().find_map(|name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*name, v))
    })?;
    let no_proxy = ["no_proxy", "NO_PROXY"]
        .iter()
        .find_map(|name| env(name).filter(|v| !v.trim().is_empty()));
    if no_proxy.is_some_and(|list| bypasses(&list, &host)) {
        return None;
    }
    Some(Proxy {
        url: value.trim().to_owned(),
        from,
    })
}

/// `scheme://[user@]host[:port]/…` → (lower-case scheme, lower-case host without brackets or
/// port).
fn scheme_and_host(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

/// Whether a `no_proxy` list names `host` (curl's rules; a `*.` prefix is read as `.`).
pub fn bypasses(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let ip: Option<IpAddr> = host.parse().ok();
    list.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let entry = entry.trim_end_matches('.');
            if let Some(ip) = ip {
                let bare = entry.trim_start_matches('[').trim_end_matches(']');
                return match bare.split_once('/') {
                    Some((net, bits)) => in_cidr(ip, net, bits),
                    None => bare.parse::<IpAddr>().is_ok_and(|e| e == ip),
                };
            }
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A proxy URL as it may be shown: the password (everything after the first `:` of the user
/// information, up to the last `@`) masked, with or without a scheme.
pub fn shown(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    // The password may hold `@` and `/`: the host is after the last `@`.
    let (authority, path) = match rest.rfind('@') {
        Some(at) => (
            &rest[..rest[at..].find('/').map_or(rest.len(), |p| at + p)],
            "",
        ),
        None => (&rest[..end], &rest[end..]),
    };
    let path = if path.is_empty() {
        &rest[authority.len()..]
    } else {
        path
    };
    let shown = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:[masked]@{host}"),
            // A token as the user name is masked too.
            None if crate::secret::kind(user).is_some() => format!("[masked]@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    crate::protocol::printable(&format!("{scheme}{shown}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_proxy_as_curl_reads_it() {
        let list =
            "localhost,.corp.example,internal.example,127.0.0.0/8,10.1.0.0/16,::1/128,192.168.1.5";
        for host in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.200.3",
            "::1",
            "192.168.1.5",
            "localhost",
            "a.corp.example",
            "corp.example",
            "internal.example",
            "x.internal.example",
        ] {
            assert!(bypasses(list, host), "{host}");
        }
        for host in [
            "128.0.0.1",
            "10.2.0.1",
            "::2",
            "192.168.1.6",
            "github.com",
            "notinternal.example",
            "corp.example.com",
        ] {
            assert!(!bypasses(list, host), "{host}");
        }
        assert!(bypasses("*", "github.com"));
        assert!(bypasses("*.github.com", "api.github.com"));
        assert!(!bypasses("10.0.0.0/33,bad/x", "10.0.0.1"));
        assert!(bypasses("0.0.0.0/0", "8.8.8.8"));
    }

    #[test]
    fn the_variable_follows_the_scheme_as_in_curl() {
        let e = [
            ("HTTPS_PROXY", "http://s:3128"),
            ("HTTP_PROXY", "http://cgi-set:1"),
            ("NO_PROXY", "127.0.0.0/8"),
        ];
        let p = |url: &str| for_url_in(url, &env(&e)).map(|p| p.from);
        assert_eq!(p("https://api.github.com/app"), Some("HTTPS_PROXY"));
        // HTTP_PROXY (upper case) is never used; loopback by CIDR goes direct.
        assert_eq!(p("http://ghe.example/api"), None);
        assert_eq!(p("https://127.0.0.1:8443/api/v3"), None);
        assert_eq!(p("https://[::1]:8443/"), Some("HTTPS_PROXY"));
        let all = [("ALL_PROXY", "socks5://x:1"), ("http_proxy", "http://h:1")];
        assert_eq!(
            for_url_in("http://a/", &env(&all)).map(|p| p.from),
            Some("http_proxy")
        );
        assert_eq!(
            for_url_in("https://a/", &env(&all)).map(|p| p.from),
            Some("ALL_PROXY")
        );
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            shown("http://me:secret@proxy:3128"),
            "http://me:[masked]@proxy:3128"
        );
        assert_eq!(shown("me:secret@proxy:3128"), "me:[masked]@proxy:3128");
        assert_eq!(shown("me:p@ss/w0rd@proxy:3128/"), "me:[masked]@proxy:3128/");
        assert_eq!(shown("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(shown("proxy:3128"), "proxy:3128");
        assert_eq!(shown("http://me@proxy:3128"), "http://me@proxy:3128");
        assert_eq!(
            shown("http://ghp_0123456789abcdefABCDEF0123456789abcd@proxy:3128"),
            "http://[masked]@proxy:3128"
        );
        let p = Proxy {
            url: "u:pw@proxy:3128".into(),
            from: "HTTPS_PROXY",
        };
        assert!(p.to_ureq().is_some());
        assert!(!p.shown().contains("pw"));
    }
}
