//! AWS KMS key ARNs, as given for `--private-key`: `arn:aws:kms:REGION:ACCOUNT:key/ID` (or
//! `…:alias/NAME`). Signing with it is `signer::aws_kms`.

use anyhow::{Result, bail};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
