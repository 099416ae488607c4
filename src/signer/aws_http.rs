//! HTTP for the AWS calls ([`super::aws_kms`], and [`super::aws_credentials`] for STS, the
//! container and instance metadata endpoints): bounded by the run's deadline, through the proxy
//! decided in `crate::net::proxy` (never for the metadata endpoints), plain http only to loopback, and the service endpoints (`AWS_ENDPOINT_URL_<SERVICE>`,
//! `AWS_ENDPOINT_URL`, or AWS's own).

use anyhow::{Result, anyhow, bail};
use std::time::{Duration, Instant};

/// The HTTP side of the AWS calls: a deadline, loopback-only plain http, and the proxy decided
/// per request (`crate::net::proxy`); metadata requests never use one.
pub struct Http {
    pub deadline: Instant,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub error_type: Option<String>,
}

impl Http {
    pub fn new(deadline: Instant) -> Http {
        Http { deadline }
    }

    /// An agent through `proxy` (or direct), bounded by the deadline.
    fn agent(&self, proxy: Option<ureq::Proxy>) -> ureq::Agent {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        ureq::Agent::config_builder()
            .timeout_global(Some(left.max(Duration::from_millis(100))))
            .timeout_connect(Some((left / 3).min(Duration::from_secs(10))))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!(
                "git-credential-github-app/",
                env!("CARGO_PKG_VERSION")
            ))
            .tls_config(tls)
            .proxy(proxy)
            .build()
            .into()
    }

    /// A request to AWS's instance or container metadata: never through a proxy (the
    /// credentials it hands out must not cross one; botocore does the same).
    pub fn call_metadata(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<Response, String> {
        self.send(
            &self.agent(crate::net::proxy::direct()),
            method,
            url,
            headers,
            None,
            timeout,
        )
    }

    /// One request, through the proxy the environment names for `url`. `timeout` caps it below
    /// the deadline.
    pub fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Response, String> {
        let agent = self.agent(crate::net::proxy::ureq_proxy(url));
        self.send(&agent, method, url, headers, body, timeout)
    }

    fn send(
        &self,
        agent: &ureq::Agent,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Response, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the time budget ran out".into());
        }
        let timeout = Some(timeout.map_or(left, |t| t.min(left)));
        let result = match method {
            "GET" => {
                let mut request = agent.get(url);
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                request.config().timeout_global(timeout).build().call()
            }
            _ => {
                let mut request = if method == "PUT" {
                    agent.put(url)
                } else {
                    agent.post(url)
                };
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                request
                    .config()
                    .timeout_global(timeout)
                    .build()
                    .send(body.unwrap_or_default())
            }
        };
        let mut response = result.map_err(|e| match e {
            ureq::Error::Timeout(_) => "no answer in time".to_owned(),
            ureq::Error::Io(e) => e.to_string(),
            ureq::Error::HostNotFound => "host not found".to_owned(),
            other => other.to_string(),
        })?;
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned());
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Response {
            status,
            body,
            error_type,
        })
    }
}

/// The service endpoint: `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, or AWS's own.
pub fn endpoint(
    service: &str,
    region: &str,
    partition: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String> {
    let specific = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
    if let Some((name, url)) = [specific.as_str(), "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|name| env(name).map(|url| (name, url)))
    {
        let url = url.trim().trim_end_matches('/').to_owned();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{name} must be a URL (https://…)");
        };
        let host = crate::config::Host::parse(rest.split('/').next().unwrap_or(""))
            .map_err(|_| anyhow!("{name} has no valid host"))?;
        match scheme {
            "https" => {}
            "http" if host.is_loopback() => {}
            _ => bail!("{name} must use https (plain http only to loopback hosts)"),
        }
        return Ok(url);
    }
    let suffix = if partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("https://{service}.{region}.{suffix}"))
}

/// `20261125T152700Z` and `20261125` for `now`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let none = |_: &str| None;
        assert_eq!(
            endpoint("kms", "eu-west-1", "aws", &none).unwrap(),
            "https://kms.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint("kms", "cn-north-1", "aws-cn", &none).unwrap(),
            "https://kms.cn-north-1.amazonaws.com.cn"
        );
        let local =
            |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:5000/".to_owned());
        assert_eq!(
            endpoint("kms", "r", "aws", &local).unwrap(),
            "http://127.0.0.1:5000"
        );
        let remote =
            |k: &str| (k == "AWS_ENDPOINT_URL_KMS").then(|| "http://kms.example.com".to_owned());
        assert!(
            endpoint("kms", "r", "aws", &remote)
                .unwrap_err()
                .to_string()
                .contains("plain http only to loopback")
        );
    }
}
