//! Secrets kept at rest under the server's key (`ROLLCALL_SECRET_KEY`): deploys' secret values until
//! they end, webhook and notification secrets the API accepted, which must be read back in clear to
//! sign or verify an HMAC. Sealed with
//! XChaCha20-Poly1305 (a random 192-bit nonce per value, so one key seals any number of them); what
//! a secret belongs to is bound in as associated data, so a sealed value moved to another row does
//! not open. Digests of secrets are keyed (HMAC-SHA256 under a key derived from the server key).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Marks the format, so that a later scheme can be told apart.
const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// Derives the digest key from the server key, so that one secret never serves two algorithms.
const DIGEST_KEY_LABEL: &[u8] = b"rollcall digest key v1";

type HmacSha256 = Hmac<Sha256>;

/// The server's key: 32 bytes, given as 64 hex digits or base64.
#[derive(Clone)]
pub struct ServerKey {
    cipher: XChaCha20Poly1305,
    digest_key: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealingError {
    #[error(
        "the server key must be 32 random bytes written as 64 hex digits or base64 \
         (e.g. `openssl rand -hex 32`)"
    )]
    InvalidKey,
    #[error("a sealed secret cannot be opened: it was sealed with another key, altered or moved")]
    CannotOpen,
}

impl ServerKey {
    pub fn parse(text: &str) -> Result<Self, SealingError> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| STANDARD.decode(text).ok())
            .filter(|bytes| bytes.len() == 32)
            .ok_or(SealingError::InvalidKey)?;
        if bytes.iter().all(|byte| *byte == bytes[0]) {
            return Err(SealingError::InvalidKey);
        }
        Ok(ServerKey {
            cipher: XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| SealingError::InvalidKey)?,
            digest_key: hmac_sha256(&bytes, &[DIGEST_KEY_LABEL]),
        })
    }

    /// A keyed digest (HMAC-SHA256, hex) of `message` for `context`: equal messages give equal
    /// digests, and nobody without the key can confirm a guessed message offline.
    pub fn digest(&self, context: &str, message: &[u8]) -> String {
        hex::encode(hmac_sha256(
            &self.digest_key,
            &[context.as_bytes(), b"\0", message],
        ))
    }

    /// Seals `secret`, bound to `context` (e.g. `hook:deploy-web`).
    pub fn seal(&self, context: &str, secret: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: context.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(&nonce, payload)
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens what [`ServerKey::seal`] sealed for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SealingError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|text| STANDARD.decode(text).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or(SealingError::CannotOpen)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let opened = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SealingError::CannotOpen)?;
        String::from_utf8(opened).map_err(|_| SealingError::CannotOpen)
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "8f2b6c0e4a1d3f5b7c9e0a2c4e6f8a1b3d5f7a9c1e3b5d7f9a0c2e4f6b8d0a1c";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let key = ServerKey::parse(KEY).unwrap();
        let sealed = key.seal("hook:web", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("MfKQ9r8G"));
        assert_eq!(
            key.open("hook:web", &sealed).unwrap(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
        assert_ne!(
            sealed,
            key.seal("hook:web", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        );
        assert_eq!(key.open("hook:api", &sealed), Err(SealingError::CannotOpen));
        let other = ServerKey::parse(&"0123456789abcdef".repeat(4)).unwrap();
        assert_eq!(
            other.open("hook:web", &sealed),
            Err(SealingError::CannotOpen)
        );
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            key.open("hook:web", &altered),
            Err(SealingError::CannotOpen)
        );
    }

    #[test]
    fn digests_are_keyed_and_bound_to_their_context() {
        let key = ServerKey::parse(KEY).unwrap();
        let digest = key.digest("values", b"hunter2");
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, key.digest("values", b"hunter2"));
        assert_ne!(digest, key.digest("values", b"hunter3"));
        assert_ne!(digest, key.digest("other", b"hunter2"));
        let other = ServerKey::parse(&"0123456789abcdef".repeat(4)).unwrap();
        assert_ne!(digest, other.digest("values", b"hunter2"));
    }

    #[test]
    fn keys_are_32_random_bytes_in_hex_or_base64() {
        assert!(ServerKey::parse(&STANDARD.encode([7u8, 9].repeat(16))).is_ok());
        for bad in ["", "short", &"00".repeat(32), &"ab".repeat(31)] {
            assert_eq!(
                ServerKey::parse(bad).unwrap_err(),
                SealingError::InvalidKey,
                "{bad:?}"
            );
        }
        assert_eq!(
            format!("{:?}", ServerKey::parse(KEY).unwrap()),
            "ServerKey(<redacted>)"
        );
    }
}
