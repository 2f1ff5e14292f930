//! Random values that must not be guessed: session CSRF tokens, account-link
//! tokens, generated demo passwords. Shared by the web layer and the domain.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// 32 bytes from the operating system's CSPRNG (through `rand`'s thread-local
/// generator, reseeded from it), URL-safe base64 without padding.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let a = super::token();
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, super::token());
    }
}
