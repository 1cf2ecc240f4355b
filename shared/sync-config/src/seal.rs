//! Secrets sealed at rest: ChaCha20-Poly1305 with a key from the environment.
//!
//! `DWSYNC_SEAL_KEY` holds the current key (32 bytes, base64 or hex); new secrets are
//! sealed with it. `DWSYNC_SEAL_OLD_KEYS` (comma-separated, same format) holds retired
//! keys that still open what they sealed. A key's id is the first 8 bytes of its SHA-256, in
//! hex, so ids need no configuration and never reveal the key.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use dwsync_config::Secret;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// The variable holding the current sealing key.
pub const KEY_ENV: &str = "DWSYNC_SEAL_KEY";
/// The variable holding retired keys, comma-separated.
pub const OLD_KEYS_ENV: &str = "DWSYNC_SEAL_OLD_KEYS";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// A sealed secret: which key sealed it, the random nonce, and the ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The 12-byte nonce, random per seal.
    pub nonce: Vec<u8>,
    /// The ciphertext followed by the 16-byte Poly1305 tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Why a key could not be loaded or a secret not opened. Never contains key or secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No key is configured.
    #[error("{KEY_ENV} is not set; it must hold a 32-byte key, base64 or hex")]
    MissingKey,
    /// A key is not 32 bytes of base64 or hex.
    #[error("{var} must hold 32-byte keys, base64 or hex")]
    BadKey {
        /// The variable it came from.
        var: &'static str,
    },
    /// The secret was sealed with a key this service does not hold.
    #[error("the secret was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    /// Authentication failed: the ciphertext, nonce or key id was altered, or the key is wrong.
    #[error("the sealed secret does not open (altered, or sealed with another key)")]
    Open,
    /// Encryption failed (never expected).
    #[error("sealing failed")]
    Seal,
}

/// Seals and opens secrets; holds the current key and any retired ones.
#[derive(Clone)]
pub struct Sealer {
    current: String,
    keys: HashMap<String, ChaCha20Poly1305>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("current", &self.current).field("keys", &self.keys.len()).finish()
    }
}

impl Sealer {
    /// The sealer of [`KEY_ENV`] and [`OLD_KEYS_ENV`].
    pub fn from_env() -> Result<Self, SealError> {
        let current = std::env::var(KEY_ENV).map_err(|_| SealError::MissingKey)?;
        let old = std::env::var(OLD_KEYS_ENV).unwrap_or_default();
        let mut sealer = Self::new(&parse_key(current.trim(), KEY_ENV)?);
        for text in old.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            sealer.add_old_key(&parse_key(text, OLD_KEYS_ENV)?);
        }
        Ok(sealer)
    }

    /// A sealer with `key` as its current key.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let current = key_id(key);
        let keys = HashMap::from([(current.clone(), ChaCha20Poly1305::new(Key::from_slice(key)))]);
        Self { current, keys }
    }

    /// Adds a retired key: it opens what it sealed but seals nothing new.
    pub fn add_old_key(&mut self, key: &[u8; KEY_LEN]) {
        let _ = self.keys.entry(key_id(key)).or_insert_with(|| ChaCha20Poly1305::new(Key::from_slice(key)));
    }

    /// The id of the key new secrets are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Seals `secret` with the current key and a fresh random nonce; `context` (the workspace
    /// id) is authenticated too, so a sealed secret cannot be moved to another workspace.
    pub fn seal(&self, secret: &Secret, context: &str) -> Result<Sealed, SealError> {
        let cipher = self.keys.get(&self.current).ok_or(SealError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(&self.current, context);
        let payload = Payload { msg: secret.expose().as_bytes(), aad: &aad };
        let ciphertext = cipher.encrypt(Nonce::from_slice(&nonce), payload).map_err(|_| SealError::Seal)?;
        Ok(Sealed { key_id: self.current.clone(), nonce: nonce.to_vec(), ciphertext })
    }

    /// Opens `sealed`, sealed for `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret, SealError> {
        let cipher = self.keys.get(&sealed.key_id).ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(SealError::Open);
        }
        let aad = aad(&sealed.key_id, context);
        let payload = Payload { msg: &sealed.ciphertext, aad: &aad };
        let plain = cipher.decrypt(Nonce::from_slice(&sealed.nonce), payload).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SealError::Open)
    }
}

/// The associated data: the key id and the context, length-prefixed so they cannot be confused.
fn aad(key_id: &str, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(key_id.len() + context.len() + 16);
    for part in [key_id, context] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// A key's id: the first 8 bytes of its SHA-256, hex.
fn key_id(key: &[u8; KEY_LEN]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

/// Parses a 32-byte key written as 64 hex digits or as base64 (standard alphabet, padded).
fn parse_key(text: &str, var: &'static str) -> Result<[u8; KEY_LEN], SealError> {
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    bytes.and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok()).ok_or(SealError::BadKey { var })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&[byte; KEY_LEN])
    }

    #[test]
    fn round_trip() {
        let s = sealer(7);
        let sealed = s.seal(&Secret::new(SECRET), "42").expect("seal");
        assert_eq!(sealed.key_id, s.current_key_id());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(s.open(&sealed, "42").expect("open").expose(), SECRET);
    }

    #[test]
    fn nonces_are_fresh() {
        let s = sealer(7);
        let a = s.seal(&Secret::new(SECRET), "42").expect("seal");
        let b = s.seal(&Secret::new(SECRET), "42").expect("seal");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn tampering_is_detected() {
        let s = sealer(7);
        let sealed = s.seal(&Secret::new(SECRET), "42").expect("seal");
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 1;
            assert_eq!(s.open(&bad, "42"), Err(SealError::Open), "byte {i}");
        }
        let mut bad = sealed.clone();
        bad.nonce[0] ^= 1;
        assert_eq!(s.open(&bad, "42"), Err(SealError::Open));
        let mut bad = sealed.clone();
        bad.nonce.pop();
        assert_eq!(s.open(&bad, "42"), Err(SealError::Open));
        assert_eq!(s.open(&sealed, "43"), Err(SealError::Open), "moved to another workspace");
    }

    #[test]
    fn a_wrong_key_does_not_open() {
        let sealed = sealer(7).seal(&Secret::new(SECRET), "42").expect("seal");
        assert_eq!(sealer(8).open(&sealed, "42"), Err(SealError::UnknownKey(sealed.key_id.clone())));
        let mut forged = sealed.clone();
        forged.key_id = sealer(8).current_key_id().to_owned();
        assert_eq!(sealer(8).open(&forged, "42"), Err(SealError::Open));
    }

    #[test]
    fn old_keys_still_open() {
        let sealed = sealer(7).seal(&Secret::new(SECRET), "42").expect("seal");
        let mut rotated = sealer(8);
        rotated.add_old_key(&[7; KEY_LEN]);
        assert_eq!(rotated.open(&sealed, "42").expect("open").expose(), SECRET);
        assert_eq!(rotated.seal(&Secret::new(SECRET), "42").expect("seal").key_id, rotated.current_key_id());
    }

    #[test]
    fn the_plaintext_never_appears_in_the_sealed_bytes() {
        let s = sealer(7);
        let sealed = s.seal(&Secret::new(SECRET), "42").expect("seal");
        let all = [sealed.key_id.as_bytes(), &sealed.nonce, &sealed.ciphertext].concat();
        assert!(!all.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
        for part in SECRET.as_bytes().chunks(8) {
            assert!(!all.windows(part.len()).any(|w| w == part), "a fragment of the secret leaked");
        }
        assert!(!format!("{sealed:?}").contains(SECRET));
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let key = [0xabu8; KEY_LEN];
        assert_eq!(parse_key(&hex::encode(key), KEY_ENV), Ok(key));
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(parse_key(&b64, KEY_ENV), Ok(key));
        assert_eq!(parse_key("abcd", KEY_ENV), Err(SealError::BadKey { var: KEY_ENV }));
        assert_eq!(parse_key(&hex::encode([1u8; 16]), KEY_ENV), Err(SealError::BadKey { var: KEY_ENV }));
    }
}
