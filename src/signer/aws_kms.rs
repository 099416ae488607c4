//! AWS KMS: `--private-key arn:aws:kms:REGION:ACCOUNT:key/ID` (or `…:alias/NAME`).
//!
//! `kms:Sign` with `MessageType=RAW` and `RSASSA_PKCS1_V1_5_SHA_256`, `kms:GetPublicKey` for the
//! fingerprint, over the existing HTTP client with a small Signature Version 4 signer (why not the
//! AWS SDK: docs/key-custody.md, "Why a small SigV4 client"). Credentials come from where AWS tools look
//! ([`super::aws_credentials`]); the region from the ARN; the endpoint from `AWS_ENDPOINT_URL_KMS`
//! or `AWS_ENDPOINT_URL` when set (plain http only to loopback), else `https://kms.REGION.amazonaws.com`.

use super::KeySigner;
use super::aws_credentials::{self, Credentials};
use super::aws_http::{Http, Response, endpoint};
use crate::keyref::kms_arn::KmsKey;
use crate::secret::hex;
use anyhow::{Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime};

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
