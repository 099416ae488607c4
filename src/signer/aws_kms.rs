//! AWS KMS: `--private-key arn:aws:kms:REGION:ACCOUNT:key/ID` (or `…:alias/NAME`).
//!
//! `kms:Sign` with `MessageType=RAW` and `RSASSA_PKCS1_V1_5_SHA_256`, `kms:GetPublicKey` for the
//! fingerprint, over the existing HTTP client with a small Signature Version 4 signer (why not the
//! AWS SDK: docs/key-custody.md, "Why a small SigV4 client"). Credentials come from where AWS tools look
//! ([`super::aws_credentials`]); the region from the ARN; the endpoint from `AWS_ENDPOINT_URL_KMS`
//! or `AWS_ENDPOINT_URL` when set (plain http only to loopback), else `https://kms.REGION.amazonaws.com`.

use super::KeySigner;
use super::aws_credentials::{self, Credentials};
use crate::secret::hex;
use anyhow::{Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime};

/// A KMS key or alias ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    pub arn: String,
    pub partition: String,
    pub region: String,
}

impl KmsKey {
    /// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `…:alias/NAME`.
    pub fn parse(text: &str) -> Result<KmsKey> {
        let text = text.trim();
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "kms"
            && !parts[3].is_empty()
            && parts[3]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && parts[5]
                .split_once('/')
                .is_some_and(|(kind, id)| matches!(kind, "key" | "alias") && !id.is_empty())
            && parts[5].bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            bail!(
                "'{}' is not an AWS KMS key ARN; use arn:aws:kms:REGION:ACCOUNT:key/KEY-ID or arn:aws:kms:REGION:ACCOUNT:alias/NAME",
                crate::protocol::printable(text)
            );
        }
        Ok(KmsKey {
            arn: text.to_owned(),
            partition: parts[1].to_owned(),
            region: parts[3].to_owned(),
        })
    }

    pub fn describe(&self) -> String {
        format!("AWS KMS key {}", self.arn)
    }
}

/// The HTTP side shared with [`aws_credentials`]: one agent, a deadline, loopback-only plain http.
pub struct Http {
    agent: ureq::Agent,
    pub deadline: Instant,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub error_type: Option<String>,
}

impl Http {
    pub fn new(deadline: Instant) -> Http {
        let left = deadline.saturating_duration_since(Instant::now());
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
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
            .build();
        Http {
            agent: config.into(),
            deadline,
        }
    }

    /// One request. `timeout` caps it below the deadline (metadata services get a short one).
    pub fn call(
        &self,
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
                let mut request = self.agent.get(url);
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                request.config().timeout_global(timeout).build().call()
            }
            _ => {
                let mut request = if method == "PUT" {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
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
fn amz_dates(now: SystemTime) -> (String, String) {
    let rfc = humantime::format_rfc3339_seconds(now).to_string(); // 2026-11-25T15:27:00Z
    let stamp: String = rfc.chars().filter(|c| *c != '-' && *c != ':').collect();
    let day = stamp.chars().take(8).collect();
    (stamp, day)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Signature Version 4 headers for a POST of `body` to `url` (path `/`, no query).
pub fn sigv4_headers(
    creds: &Credentials,
    service: &str,
    region: &str,
    url: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    now: SystemTime,
) -> Vec<(String, String)> {
    let (stamp, day) = amz_dates(now);
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = match after_scheme.find('/') {
        Some(i) => (&after_scheme[..i], &after_scheme[i..]),
        None => (after_scheme, "/"),
    };
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host.to_owned()),
        ("x-amz-date".into(), stamp.clone()),
    ];
    for (k, v) in extra {
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), token.expose().to_owned()));
    }
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "POST\n{path}\n\n{canonical_headers}\n{signed}\n{}",
        hex(&Sha256::digest(body))
    );
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let secret = format!("AWS4{}", creds.secret_access_key.expose());
    let k_date = hmac(secret.as_bytes(), day.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    );
    headers.retain(|(k, _)| k != "host");
    headers.push(("authorization".into(), authorization));
    headers
}

pub struct KmsSigner {
    key: KmsKey,
    url: String,
    creds: Credentials,
    http: Http,
}

impl KmsSigner {
    pub fn open(key: &KmsKey, deadline: Instant) -> Result<KmsSigner> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = endpoint("kms", &key.region, &key.partition, &env)?;
        let http = Http::new(deadline);
        let creds = aws_credentials::find(&http, &key.region, &key.partition, &env)?;
        crate::trace!(
            "{}: credentials {} from {}",
            key.describe(),
            creds.access_key_id,
            creds.source
        );
        Ok(KmsSigner {
            key: key.clone(),
            url,
            creds,
            http,
        })
    }

    /// One KMS call (`TrentService.<action>`), retried on throttling and 5xx inside the deadline.
    fn call(&self, action: &str, body: &serde_json::Value) -> Result<Vec<u8>> {
        let body = body.to_string().into_bytes();
        let target = format!("TrentService.{action}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let headers = sigv4_headers(
                &self.creds,
                "kms",
                &self.key.region,
                &self.url,
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", &target),
                ],
                &body,
                SystemTime::now(),
            );
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = self
                .http
                .call("POST", &self.url, &headers, Some(&body), None)
                .map_err(|e| {
                    anyhow!(
                        "cannot reach AWS KMS at {} for {}: {e}",
                        self.url,
                        self.key.arn
                    )
                })?;
            if response.status == 200 {
                return Ok(response.body);
            }
            let error = KmsError::from(&response);
            let retry = error.is_throttling() || response.status >= 500;
            let pause = Duration::from_millis(200 << attempt);
            if retry && attempt < 4 && Instant::now() + pause < self.http.deadline {
                crate::trace!("AWS KMS {action}: {} — retrying", error.kind);
                std::thread::sleep(pause);
                continue;
            }
            return Err(error.explain(action, &self.key, &self.creds));
        }
    }
}

#[derive(Debug)]
struct KmsError {
    status: u16,
    kind: String,
    message: String,
}

impl KmsError {
    fn from(response: &Response) -> KmsError {
        #[derive(Deserialize, Default)]
        struct Body {
            #[serde(rename = "__type")]
            kind: Option<String>,
            message: Option<String>,
            #[serde(rename = "Message")]
            message_upper: Option<String>,
        }
        let mut body: Body = serde_json::from_slice(&response.body).unwrap_or_default();
        // Some front ends (and moto's IAM checks) answer errors in AWS's XML form.
        let text = String::from_utf8_lossy(&response.body);
        if body.kind.is_none() {
            body.kind = aws_credentials::xml_value(&text, "Code");
            body.message = aws_credentials::xml_value(&text, "Message");
        }
        let kind = body
            .kind
            .or_else(|| response.error_type.clone())
            .unwrap_or_else(|| format!("HTTP {}", response.status));
        let kind = kind.rsplit('#').next().unwrap_or(&kind).to_owned();
        let message: String = body
            .message
            .or(body.message_upper)
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        KmsError {
            status: response.status,
            kind,
            message,
        }
    }

    fn is_throttling(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "ThrottlingException" | "LimitExceededException" | "TooManyRequestsException"
        ) || self.status == 429
    }

    fn explain(&self, action: &str, key: &KmsKey, creds: &Credentials) -> anyhow::Error {
        let said = if self.message.is_empty() {
            self.kind.clone()
        } else {
            format!("{}: {}", self.kind, self.message.trim())
        };
        let what = key.describe();
        let permission = if action == "Sign" {
            "kms:Sign"
        } else {
            "kms:GetPublicKey"
        };
        let todo = match self.kind.as_str() {
            "AccessDeniedException" | "AccessDenied" => format!(
                "allow {permission} on the key for the credentials from {} (access key {})",
                creds.source, creds.access_key_id
            ),
            k if self.is_throttling() || k == "KMSInternalException" => {
                "AWS KMS is throttling or failing; try again shortly (or raise the account's KMS request quota)".to_owned()
            }
            "NotFoundException" => "check the key ARN and its region".to_owned(),
            "DisabledException" | "KMSInvalidStateException" => {
                "enable the key (it is disabled or pending deletion)".to_owned()
            }
            "InvalidKeyUsageException" => {
                "the key must be an RSA key with key usage SIGN_VERIFY".to_owned()
            }
            "InvalidSignatureException" if self.message.contains("expired") => {
                "AWS says the request's time is off (Signature expired); check this machine's clock"
                    .to_owned()
            }
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "ExpiredTokenException"
            | "ExpiredToken"
            | "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "InvalidClientTokenId" => format!(
                "AWS did not accept the credentials from {}; refresh them",
                creds.source
            ),
            _ => "see the AWS KMS documentation for this error".to_owned(),
        };
        anyhow!("AWS KMS refused {action} with {what} ({said}); {todo}")
    }
}

impl KeySigner for KmsSigner {
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>> {
        #[derive(Deserialize)]
        struct Signed {
            #[serde(rename = "Signature")]
            signature: String,
        }
        let body = self.call(
            "Sign",
            &serde_json::json!({
                "KeyId": self.key.arn,
                "Message": STANDARD.encode(signing_input),
                "MessageType": "RAW",
                "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
            }),
        )?;
        let signed: Signed = serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "AWS KMS answered Sign for {} with JSON the helper cannot read ({e})",
                self.key.arn
            )
        })?;
        STANDARD.decode(signed.signature.trim()).map_err(|_| {
            anyhow!(
                "AWS KMS answered Sign for {} with a signature that is not base64",
                self.key.arn
            )
        })
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        #[derive(Deserialize)]
        struct Public {
            #[serde(rename = "PublicKey")]
            public_key: String,
        }
        let body = self.call(
            "GetPublicKey",
            &serde_json::json!({ "KeyId": self.key.arn }),
        )?;
        let public: Public = serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "AWS KMS answered GetPublicKey for {} with JSON the helper cannot read ({e})",
                self.key.arn
            )
        })?;
        STANDARD.decode(public.public_key.trim()).map_err(|_| {
            anyhow!(
                "AWS KMS answered GetPublicKey for {} with a key that is not base64",
                self.key.arn
            )
        })
    }

    fn describe(&self) -> String {
        self.key.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn arns() {
        let key = KmsKey::parse(
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        )
        .unwrap();
        assert_eq!(
            (key.region.as_str(), key.partition.as_str()),
            ("eu-west-1", "aws")
        );
        assert!(KmsKey::parse("arn:aws:kms:us-east-1:123456789012:alias/github-app").is_ok());
        assert!(KmsKey::parse("arn:aws-cn:kms:cn-north-1:123456789012:key/x1").is_ok());
        for bad in [
            "arn:aws:kms:us-east-1:123:key/x",
            "arn:aws:s3:::bucket",
            "arn:aws:kms:us-east-1:123456789012:keys/x",
            "arn:aws:kms::123456789012:key/x",
        ] {
            assert!(KmsKey::parse(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn throttling_and_denial_are_one_line_without_secrets() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI"),
            session_token: Some(Secret::new("FwoGZXIvYXdz")),
            source: "the environment (AWS_ACCESS_KEY_ID)".into(),
        };
        let key = KmsKey::parse("arn:aws:kms:us-east-1:123456789012:alias/gh").unwrap();
        let response = |status, body: &str| Response {
            status,
            body: body.as_bytes().to_vec(),
            error_type: None,
        };
        let throttled = KmsError::from(&response(
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ));
        assert!(throttled.is_throttling());
        assert_eq!(
            throttled.explain("Sign", &key, &creds).to_string(),
            "AWS KMS refused Sign with AWS KMS key arn:aws:kms:us-east-1:123456789012:alias/gh (ThrottlingException: Rate exceeded); AWS KMS is throttling or failing; try again shortly (or raise the account's KMS request quota)"
        );
        let denied = KmsError::from(&response(
            400,
            r#"{"__type":"com.amazonaws.kms#AccessDeniedException","Message":"not authorized\nto sign"}"#,
        ));
        let text = denied.explain("Sign", &key, &creds).to_string();
        assert_eq!(
            text,
            "AWS KMS refused Sign with AWS KMS key arn:aws:kms:us-east-1:123456789012:alias/gh (AccessDeniedException: not authorized to sign); allow kms:Sign on the key for the credentials from the environment (AWS_ACCESS_KEY_ID) (access key AKIDEXAMPLE)"
        );
        assert!(!text.contains("wJalr") && !text.contains("FwoG"));
        let skewed = KmsError::from(&response(
            400,
            r#"{"__type":"InvalidSignatureException","message":"Signature expired: 20261125T120000Z is now earlier than 20261125T121000Z"}"#,
        ));
        assert!(
            skewed
                .explain("Sign", &key, &creds)
                .to_string()
                .ends_with("check this machine's clock")
        );
    }

    #[test]
    fn sigv4_signing_key_matches_aws_example() {
        // docs.aws.amazon.com "Examples of how to derive a signing key for Signature Version 4":
        // secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam.
        let k_date = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        let k_region = hmac(&k_date, b"us-east-1");
        let k_service = hmac(&k_region, b"iam");
        let k_signing = hmac(&k_service, b"aws4_request");
        assert_eq!(
            hex(&k_signing),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn sigv4_headers_carry_the_token_but_never_the_secret() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("session-token-value")),
            source: "test".into(),
        };
        let headers = sigv4_headers(
            &creds,
            "kms",
            "us-east-1",
            "https://kms.us-east-1.amazonaws.com",
            &[("x-amz-target", "TrentService.Sign")],
            b"{}",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        );
        let find = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
        assert_eq!(find("x-amz-date").unwrap(), "20150830T123600Z");
        assert_eq!(find("x-amz-security-token").unwrap(), "session-token-value");
        let auth = find("authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target, Signature="), "{auth}");
        assert!(!format!("{headers:?}").contains("wJalr"));
    }
}
