//! A delivery's signature, checked on the raw body before anything parses it, in constant time:
//! GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the body), GitLab's `X-Gitlab-Token` (the
//! secret itself) and the Standard Webhooks scheme of generic senders (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`, with a 5-minute tolerance against replays).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Provider;

/// GitHub's header: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
/// The Standard Webhooks secret prefix.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";

const MIN_SHARED_SECRET_LEN: usize = 16;
const MAX_SHARED_SECRET_LEN: usize = 1024;

/// A hook's shared secret, checked to suit its provider. Its `Debug` hides it.
#[derive(Clone)]
pub struct HookSecret(String);

/// Why a delivery was refused, deliberately without saying which part was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery's signature could not be verified")]
pub struct Unverified;

impl HookSecret {
    pub fn parse(provider: Provider, secret: String) -> Result<Self, String> {
        match provider {
            Provider::Github | Provider::Gitlab => {
                let length = secret.chars().count();
                // GitLab sends the token itself in a header, which holds visible ASCII only.
                let printable = match provider {
                    Provider::Gitlab => secret.bytes().all(|b| b.is_ascii_graphic()),
                    _ => !secret.chars().any(char::is_control),
                };
                if !(MIN_SHARED_SECRET_LEN..=MAX_SHARED_SECRET_LEN).contains(&length) || !printable
                {
                    return Err(format!(
                        "must be {MIN_SHARED_SECRET_LEN} to {MAX_SHARED_SECRET_LEN} {} characters (e.g. `openssl rand -hex 32`)",
                        if provider == Provider::Gitlab {
                            "visible ASCII"
                        } else {
                            "printable"
                        }
                    ));
                }
            }
            Provider::Generic => {
                let key = secret
                    .strip_prefix(STANDARD_SECRET_PREFIX)
                    .and_then(|key| STANDARD.decode(key).ok());
                if !key.is_some_and(|key| (24..=64).contains(&key.len())) {
                    return Err(format!(
                        "must be a Standard Webhooks secret: {STANDARD_SECRET_PREFIX} and the base64 of 24 to 64 random bytes (e.g. `echo {STANDARD_SECRET_PREFIX}$(openssl rand -base64 32)`)"
                    ));
                }
            }
        }
        Ok(Self(secret))
    }

    /// The secret in clear, to seal it for storage.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks a delivery's signature on its raw `body`.
    pub fn verify(
        &self,
        provider: Provider,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Unverified> {
        match provider {
            Provider::Github => self.verify_github(headers, body),
            Provider::Gitlab => self.verify_gitlab(headers),
            Provider::Generic => self.verify_standard(headers, body),
        }
    }

    fn verify_github(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Unverified> {
        let signature = header(headers, GITHUB_SIGNATURE)?
            .strip_prefix("sha256=")
            .and_then(|hex_digits| hex::decode(hex_digits).ok())
            .ok_or(Unverified)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).map_err(|_| Unverified)?;
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature).map_err(|_| Unverified)
    }

    fn verify_gitlab(&self, headers: &HeaderMap) -> Result<(), Unverified> {
        let token = header(headers, GITLAB_TOKEN)?;
        // Digests have one length, so the comparison's time says nothing about the secret's.
        let given = Sha256::digest(token.as_bytes());
        let expected = Sha256::digest(self.0.as_bytes());
        if bool::from(given.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(Unverified)
        }
    }

    fn verify_standard(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Unverified> {
        standardwebhooks::Webhook::new(&self.0)
            .and_then(|webhook| webhook.verify(body, headers))
            .map_err(|_| Unverified)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Unverified> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .ok_or(Unverified)
}

impl fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn secret(provider: Provider, text: &str) -> HookSecret {
        HookSecret::parse(provider, text.to_owned()).unwrap()
    }

    /// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    #[test]
    fn github_documented_vector_verifies() {
        let secret = secret(Provider::Github, "It's a Secret to Everybody");
        let signed = headers(&[(
            GITHUB_SIGNATURE,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(
            secret.verify(Provider::Github, &signed, b"Hello, World!"),
            Ok(())
        );
        assert_eq!(
            secret.verify(Provider::Github, &signed, b"Hello, World?"),
            Err(Unverified)
        );
        for wrong in [
            "sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=not hex",
        ] {
            let forged = headers(&[(GITHUB_SIGNATURE, wrong)]);
            assert_eq!(
                secret.verify(Provider::Github, &forged, b"Hello, World!"),
                Err(Unverified),
                "{wrong}"
            );
        }
        assert_eq!(
            secret.verify(Provider::Github, &HeaderMap::new(), b"Hello, World!"),
            Err(Unverified)
        );
    }

    #[test]
    fn gitlab_token_must_equal_the_secret() {
        let secret = secret(Provider::Gitlab, "gitlab-token-0123456789");
        let sent = |token: &str| headers(&[(GITLAB_TOKEN, token)]);
        assert_eq!(
            secret.verify(Provider::Gitlab, &sent("gitlab-token-0123456789"), b"{}"),
            Ok(())
        );
        for wrong in ["gitlab-token-012345678", "gitlab-token-01234567890", ""] {
            assert_eq!(
                secret.verify(Provider::Gitlab, &sent(wrong), b"{}"),
                Err(Unverified)
            );
        }
        assert_eq!(
            secret.verify(Provider::Gitlab, &HeaderMap::new(), b"{}"),
            Err(Unverified)
        );
    }

    /// Signs the Standard Webhooks way without the crate the server verifies with:
    /// `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`.
    fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.strip_prefix(STANDARD_SECRET_PREFIX).unwrap())
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The Standard Webhooks specification's published vector, so that this signer (and what it
    /// checks the crate against) is the scheme itself.
    #[test]
    fn standard_webhooks_signer_reproduces_the_specifications_vector() {
        assert_eq!(
            standard_signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn standard_webhooks_signatures_verify_within_the_tolerance_only() {
        let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let secret = secret(Provider::Generic, text);
        let body = br#"{"type":"image.pushed","tag":"1.4.2"}"#;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let delivery = |timestamp: i64, signature: &str| {
            headers(&[
                ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
                ("webhook-timestamp", &timestamp.to_string()),
                ("webhook-signature", signature),
            ])
        };
        let signed = standard_signature(text, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body);
        assert_eq!(
            secret.verify(Provider::Generic, &delivery(now, &signed), body),
            Ok(())
        );
        // Several signatures (a secret being rotated): one valid is enough.
        let rotating = format!("v1,c2lnbmF0dXJl {signed}");
        assert_eq!(
            secret.verify(Provider::Generic, &delivery(now, &rotating), body),
            Ok(())
        );
        let old = now - 6 * 60;
        let replayed = standard_signature(text, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", old, body);
        assert_eq!(
            secret.verify(Provider::Generic, &delivery(old, &replayed), body),
            Err(Unverified)
        );
        let early = now + 6 * 60;
        let future = standard_signature(text, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", early, body);
        assert_eq!(
            secret.verify(Provider::Generic, &delivery(early, &future), body),
            Err(Unverified)
        );
        assert_eq!(
            secret.verify(Provider::Generic, &delivery(now, &signed), b"{}"),
            Err(Unverified)
        );
        assert_eq!(
            secret.verify(Provider::Generic, &HeaderMap::new(), body),
            Err(Unverified)
        );
    }

    #[test]
    fn secrets_suit_their_provider_and_stay_hidden() {
        assert!(HookSecret::parse(Provider::Github, "short".into()).is_err());
        assert!(HookSecret::parse(Provider::Gitlab, "has a space in it!".into()).is_err());
        assert!(HookSecret::parse(Provider::Generic, "It's a Secret to Everybody".into()).is_err());
        assert!(HookSecret::parse(Provider::Generic, "whsec_c2hvcnQ=".into()).is_err());
        let secret = secret(Provider::Github, "It's a Secret to Everybody");
        assert_eq!(format!("{secret:?}"), "HookSecret(<redacted>)");
    }
}
