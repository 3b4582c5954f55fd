//! Integration secrets at rest: XChaCha20-Poly1305 under a master key that never sits in the database.
//!
//! A sealed value reads `v1:<key id>:<base64(nonce ‖ ciphertext)>`. The associated data binds the value to its
//! table, row and field, so a ciphertext copied into another row or field fails to open instead of
//! silently becoming that row's secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;

/// A secret value in memory. Its `Debug` never shows the value and it is wiped when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }
    /// The only way to read the value: every call site is a place that can leak it, so it is easy to grep.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_owned())
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "the master key must be 32 bytes encoded as base64 (generate one with `openssl rand -base64 32`): {0}"
    )]
    BadKey(String),
    #[error(
        "this secret was sealed with master key {found}, but the configured key is {expected}; start rmmbridge with the original RMMBRIDGE_MASTER_KEY or key file"
    )]
    WrongKey { expected: String, found: String },
    #[error(
        "a stored secret failed authentication: it was altered, or copied from another row or field"
    )]
    Tampered,
    #[error("a stored secret is not in the sealed format `v1:<key id>:<base64>`")]
    Malformed,
    #[error("the random number generator failed: {0}")]
    Random(String),
}

/// The 32-byte master key. Loaded from `RMMBRIDGE_MASTER_KEY` or the key file; never stored in the database.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id={})", self.key_id())
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(MasterKey(bytes))
    }

    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let mut raw = B64
            .decode(text.trim())
            .map_err(|e| SecretError::BadKey(e.to_string()))?;
        let result = <[u8; 32]>::try_from(raw.as_slice())
            .map(MasterKey)
            .map_err(|_| SecretError::BadKey(format!("it decodes to {} bytes", raw.len())));
        raw.zeroize();
        result
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// A short public fingerprint of the key, written next to every sealed value so a wrong key is named,
    /// not reported as corruption.
    pub fn key_id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"rmmbridge master key id")
            .chain_update(self.0)
            .finalize();
        hex::encode(&digest[..4])
    }
}

/// Where a sealed value lives. Bound into the ciphertext as associated data.
#[derive(Clone, Copy, Debug)]
pub struct SecretAad<'a> {
    pub table: &'a str,
    pub row: i64,
    pub field: &'a str,
}

impl SecretAad<'_> {
    fn bytes(&self) -> Vec<u8> {
        format!("rmmbridge/{}/{}/{}", self.table, self.row, self.field).into_bytes()
    }
}

pub struct SecretCipher {
    key_id: String,
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretCipher(key id {})", self.key_id)
    }
}

impl SecretCipher {
    pub fn new(key: &MasterKey) -> Self {
        let aead =
            XChaCha20Poly1305::new_from_slice(&key.0).expect("a 32-byte key is always valid");
        SecretCipher {
            key_id: key.key_id(),
            aead,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn seal(&self, value: &SecretString, aad: SecretAad<'_>) -> Result<String, SecretError> {
        // A random 192-bit nonce per value: collisions are negligible, so no nonce bookkeeping is needed.
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let aad = aad.bytes();
        let ciphertext = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Tampered)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION}:{}:{}", self.key_id, B64.encode(blob)))
    }

    pub fn open(&self, sealed: &str, aad: SecretAad<'_>) -> Result<SecretString, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        if key_id != self.key_id {
            return Err(SecretError::WrongKey {
                expected: self.key_id.clone(),
                found: key_id.to_owned(),
            });
        }
        let blob = B64.decode(body).map_err(|_| SecretError::Malformed)?;
        if blob.len() < NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let aad = aad.bytes();
        let plain = self
            .aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Tampered)?;
        String::from_utf8(plain)
            .map(SecretString)
            .map_err(|_| SecretError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(row: i64, field: &str) -> SecretAad<'_> {
        SecretAad {
            table: "integration",
            row,
            field,
        }
    }

    #[test]
    fn sealed_values_open_with_the_same_key_and_place() {
        let key = MasterKey::generate().unwrap();
        let cipher = SecretCipher::new(&key);
        let sealed = cipher.seal(&"hunter2-jwt".into(), aad(7, "jwt")).unwrap();
        assert!(!sealed.contains("hunter2"));
        assert!(sealed.starts_with(&format!("v1:{}:", key.key_id())));
        assert_eq!(
            cipher.open(&sealed, aad(7, "jwt")).unwrap().expose(),
            "hunter2-jwt"
        );
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let cipher = SecretCipher::new(&MasterKey::generate().unwrap());
        let a = cipher.seal(&"x".into(), aad(1, "f")).unwrap();
        let b = cipher.seal(&"x".into(), aad(1, "f")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_value_moved_to_another_row_or_field_does_not_open() {
        let cipher = SecretCipher::new(&MasterKey::generate().unwrap());
        let sealed = cipher.seal(&"secret".into(), aad(1, "jwt")).unwrap();
        assert_eq!(
            cipher.open(&sealed, aad(2, "jwt")),
            Err(SecretError::Tampered)
        );
        assert_eq!(
            cipher.open(&sealed, aad(1, "password")),
            Err(SecretError::Tampered)
        );
    }

    #[test]
    fn a_wrong_key_is_named_not_reported_as_corruption() {
        let a = SecretCipher::new(&MasterKey::generate().unwrap());
        let b = SecretCipher::new(&MasterKey::generate().unwrap());
        let sealed = a.seal(&"secret".into(), aad(1, "jwt")).unwrap();
        match b.open(&sealed, aad(1, "jwt")) {
            Err(SecretError::WrongKey { expected, found }) => {
                assert_eq!(expected, b.key_id());
                assert_eq!(found, a.key_id());
            }
            other => panic!("expected WrongKey, got {other:?}"),
        }
    }

    #[test]
    fn flipped_bits_and_garbage_are_rejected() {
        let cipher = SecretCipher::new(&MasterKey::generate().unwrap());
        let sealed = cipher.seal(&"secret".into(), aad(1, "jwt")).unwrap();
        let mut bytes = sealed.into_bytes();
        // A character inside the base64 payload, not its last one: any swap there stays valid
        // base64, so the change reaches the AEAD check (a bad final character is Malformed).
        let inside = bytes.len() - 12;
        bytes[inside] = if bytes[inside] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            cipher.open(&tampered, aad(1, "jwt")),
            Err(SecretError::Tampered)
        );
        assert_eq!(
            cipher.open("plaintext", aad(1, "jwt")),
            Err(SecretError::Malformed)
        );
    }

    #[test]
    fn keys_round_trip_through_base64_and_bad_keys_are_explained() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.key_id(), again.key_id());
        let err = MasterKey::from_base64("c2hvcnQ=").unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let s = SecretString::new("top-secret-value");
        assert_eq!(format!("{s:?}"), "SecretString(<redacted>)");
    }
}
