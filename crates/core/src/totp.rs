//! RFC 6238 time-based one-time passwords (HMAC-SHA-1, 30-second steps), so an admin can read the current
//! code of a stored N-central MFA secret here instead of pasting the secret into a third-party website.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECS: u64 = 30;
pub const DIGITS: u32 = 6;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TotpError {
    #[error(
        "the MFA secret is not valid Base32 (letters A-Z and digits 2-7, as shown next to the QR code): {0}"
    )]
    NotBase32(String),
    #[error("the MFA secret is empty")]
    Empty,
}

/// A code and how long it stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpCode {
    pub code: String,
    pub valid_for_secs: u64,
}

/// Decodes a Base32 secret as authenticator apps accept it: case-insensitive, spaces and dashes ignored,
/// padding optional.
pub fn decode_base32_secret(text: &str) -> Result<Vec<u8>, TotpError> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if cleaned.is_empty() {
        return Err(TotpError::Empty);
    }
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|e| TotpError::NotBase32(e.to_string()))
}

/// The HOTP value (RFC 4226) for one counter, with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    // RFC 4226 §5.3 dynamic truncation.
    let offset = (hash[hash.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The TOTP code for a Unix time, with `digits` digits and 30-second steps.
pub fn totp_at(secret: &[u8], unix_secs: u64, digits: u32) -> String {
    hotp(secret, unix_secs / STEP_SECS, digits)
}

/// The current 6-digit code for a Base32 secret at `unix_secs`.
pub fn current_code(base32_secret: &str, unix_secs: u64) -> Result<TotpCode, TotpError> {
    let secret = decode_base32_secret(base32_secret)?;
    Ok(TotpCode {
        code: totp_at(&secret, unix_secs, DIGITS),
        valid_for_secs: STEP_SECS - unix_secs % STEP_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 column: the seed is the ASCII string "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(totp_at(RFC_SEED, time, 8), expected, "T={time}");
        }
    }

    #[test]
    fn six_digit_codes_are_the_low_digits_of_the_vectors() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(totp_at(RFC_SEED, time, 6), &expected[2..], "T={time}");
        }
    }

    #[test]
    fn base32_secrets_are_read_like_authenticator_apps_read_them() {
        // Base32 of the RFC seed.
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(decode_base32_secret(b32).unwrap(), RFC_SEED);
        assert_eq!(
            decode_base32_secret("gezd gnbv-gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            RFC_SEED
        );
        let code = current_code(b32, 59).unwrap();
        assert_eq!(
            code,
            TotpCode {
                code: "287082".into(),
                valid_for_secs: 1
            }
        );
        assert_eq!(current_code(b32, 60).unwrap().valid_for_secs, 30);
    }

    #[test]
    fn invalid_secrets_are_explained() {
        assert_eq!(decode_base32_secret("  "), Err(TotpError::Empty));
        let err = decode_base32_secret("not base32!").unwrap_err();
        assert!(err.to_string().contains("Base32"), "{err}");
    }
}
