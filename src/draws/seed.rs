//! The draw's seed: the secret, its public commitment, the canonical published
//! list of registrations, and the seed derived from both.
//!
//! This module owns the byte-level contract a verifier must reproduce.
//!
//! # Public contract
//!
//! All hashes are SHA-256; all hex is lowercase, two digits per byte, no
//! prefix or separator (parsing also accepts uppercase).
//!
//! 1. Before registration opens the operator picks a 32-byte `secret` and
//!    publishes `commitment = hex(SHA-256(secret))`.
//! 2. At close the operator publishes the *canonical list*: one line per
//!    registration, lines sorted by ascending `id` (ties, which a database
//!    primary key never produces, by the line's bytes), each line being
//!
//!    ```text
//!    {id},{pseudonym},{quantity},{c1};{c2};{c3}\n
//!    ```
//!
//!    `id`, `quantity` and the window ids `c1..` are decimal integers as
//!    Rust's `Display` writes them (no `+`, no leading zeros, `-` for
//!    negatives); the choices are in rank order, joined by `;`, as many as
//!    the registration has (1 to 3; none gives an empty last field); every
//!    line, the last included, ends with a single `\n` (0x0A); the text is
//!    UTF-8 with no BOM. An empty list is the empty string. Example:
//!
//!    ```text
//!    7,K3F-92,2,14;15;11\n
//!    9,Q8D-10,1,15\n
//!    ```
//!
//! 3. `digest = SHA-256(canonical list)` ([`registrations_digest`]).
//! 4. The operator reveals `secret` (hex); anyone checks
//!    `hex(SHA-256(secret)) == commitment`.
//! 5. `seed = SHA-256(secret || digest)`: the 32 secret bytes followed by
//!    the 32 digest bytes, 64 bytes hashed ([`seed()`]).
//!
//! The format is unambiguous only if a pseudonym contains no `,`, `;` or
//! control character (in particular no `\n`); the app must enforce that when
//! it creates pseudonyms ([`is_canonical_pseudonym`]).

use sha2::{Digest, Sha256};
use std::fmt;

/// The 32 secret bytes behind the commitment.
///
/// `Debug` is redacted: before the reveal the secret must not reach logs,
/// or anyone reading them could predict the order and register accordingly.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    /// Wraps bytes the caller drew from a CSPRNG.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Secret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters: the form revealed at close.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses exactly 64 hex digits (either case); anything else is `None`.
    pub fn parse_hex(s: &str) -> Option<Secret> {
        let bytes: [u8; 32] = from_hex(s)?.try_into().ok()?;
        Some(Secret(bytes))
    }

    /// `hex(SHA-256(secret bytes))`, published before registration opens.
    pub fn commitment(&self) -> String {
        to_hex(&Sha256::digest(self.0))
    }

    /// Whether this secret opens `commitment` (hex in either case).
    pub fn matches_commitment(&self, commitment: &str) -> bool {
        from_hex(commitment).is_some_and(|c| c[..] == Sha256::digest(self.0)[..])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One published registration: the line a verifier sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: i64,
    pub pseudonym: String,
    pub quantity: i32,
    /// Pickup window ids in rank order, best first (1 to 3 of them).
    pub choices: Vec<i64>,
}

/// The registration's line in the canonical list, `\n` included.
pub fn canonical_line(r: &Registration) -> String {
    let choices: Vec<String> = r.choices.iter().map(i64::to_string).collect();
    format!(
        "{},{},{},{}\n",
        r.id,
        r.pseudonym,
        r.quantity,
        choices.join(";")
    )
}

/// Whether `p` can appear in a canonical line without making it ambiguous.
pub fn is_canonical_pseudonym(p: &str) -> bool {
    !p.chars().any(|c| c == ',' || c == ';' || c.is_control())
}

/// The registrations in canonical order (by id): the order the published
/// list uses and the one [`super::order::permutation`] indexes into.
pub fn sorted_by_id(regs: &[Registration]) -> Vec<&Registration> {
    let mut sorted: Vec<&Registration> = regs.iter().collect();
    // The tie-break only matters for duplicate ids, which the database never
    // produces; it keeps the result independent of the caller's order anyway.
    sorted.sort_by(|a, b| {
        a.id.cmp(&b.id)
            .then_with(|| canonical_line(a).cmp(&canonical_line(b)))
    });
    sorted
}

/// The full published text: canonical lines in canonical order.
pub fn canonical_list(regs: &[Registration]) -> String {
    sorted_by_id(regs).into_iter().map(canonical_line).collect()
}

/// `SHA-256(canonical_list(regs))`; the caller's order does not matter.
pub fn registrations_digest(regs: &[Registration]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for r in sorted_by_id(regs) {
        hasher.update(canonical_line(r).as_bytes());
    }
    hasher.finalize().into()
}

/// `SHA-256(secret || digest)`.
///
/// Because the digest fixes the registrations and the commitment fixes the
/// secret before they exist, neither the operator nor a registrant can steer
/// the seed after seeing who registered.
pub fn seed(secret: &Secret, digest: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(secret.0);
    hasher.update(digest);
    hasher.finalize().into()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Decodes hex (either case, even length, nothing else: no `0x`, no
/// whitespace); `None` on anything malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: i64, pseudonym: &str, quantity: i32, choices: &[i64]) -> Registration {
        Registration {
            id,
            pseudonym: pseudonym.to_string(),
            quantity,
            choices: choices.to_vec(),
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_malformed() {
        let bytes = [0x00, 0x01, 0xab, 0xff, 0x7f];
        assert_eq!(to_hex(&bytes), "0001abff7f");
        assert_eq!(from_hex("0001abff7f"), Some(bytes.to_vec()));
        assert_eq!(from_hex("0001ABFF7F"), Some(bytes.to_vec()));
        assert_eq!(from_hex(""), Some(vec![]));
        for bad in ["0", "0g", "0x00", " 00", "00 ", "é0"] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secret_hex_round_trips() {
        let s = Secret::from_bytes([0x5a; 32]);
        assert_eq!(s.to_hex(), "5a".repeat(32));
        assert_eq!(Secret::parse_hex(&s.to_hex()), Some(s.clone()));
        assert_eq!(Secret::parse_hex(&"5A".repeat(32)), Some(s));
        assert_eq!(Secret::parse_hex(&"5a".repeat(31)), None);
        assert_eq!(Secret::parse_hex(&"5a".repeat(33)), None);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::from_bytes([0x5a; 32]);
        assert!(!format!("{s:?}").contains("5a"));
    }

    // Known answers computed independently (`sha256sum`, Python hashlib), so
    // a change to the byte contract is caught.
    #[test]
    fn commitment_known_answer() {
        let s = Secret::from_bytes([0; 32]);
        assert_eq!(
            s.commitment(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert!(s.matches_commitment(&s.commitment()));
        assert!(s.matches_commitment(&s.commitment().to_uppercase()));
        assert!(!Secret::from_bytes([1; 32]).matches_commitment(&s.commitment()));
        assert!(!s.matches_commitment("not hex"));
    }

    #[test]
    fn canonical_line_format() {
        assert_eq!(
            canonical_line(&reg(7, "K3F-92", 2, &[14, 15, 11])),
            "7,K3F-92,2,14;15;11\n"
        );
        assert_eq!(
            canonical_line(&reg(9, "Q8D-10", 1, &[15])),
            "9,Q8D-10,1,15\n"
        );
        assert_eq!(canonical_line(&reg(-1, "", 0, &[])), "-1,,0,\n");
    }

    #[test]
    fn pseudonym_check_rejects_separators() {
        assert!(is_canonical_pseudonym("K3F-92"));
        assert!(is_canonical_pseudonym("Zoë"));
        for bad in ["a,b", "a;b", "a\nb", "a\rb", "a\tb"] {
            assert!(!is_canonical_pseudonym(bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_ignores_caller_order() {
        let a = reg(7, "K3F-92", 2, &[14, 15, 11]);
        let b = reg(9, "Q8D-10", 1, &[15]);
        let c = reg(3, "AAA-00", 3, &[11, 14]);
        let one = registrations_digest(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(
            one,
            registrations_digest(&[c.clone(), a.clone(), b.clone()])
        );
        assert_eq!(one, registrations_digest(&[b, c, a]));
    }

    #[test]
    fn digest_is_hash_of_canonical_list() {
        let regs = [
            reg(9, "Q8D-10", 1, &[15]),
            reg(7, "K3F-92", 2, &[14, 15, 11]),
        ];
        let list = canonical_list(&regs);
        assert_eq!(list, "7,K3F-92,2,14;15;11\n9,Q8D-10,1,15\n");
        let expected: [u8; 32] = Sha256::digest(list.as_bytes()).into();
        assert_eq!(registrations_digest(&regs), expected);
        assert_eq!(
            to_hex(&registrations_digest(&regs)),
            "816c86b3b802098af53d639df6154e5a944ae8007188b21cada0bc77a80d97e5"
        );
    }

    #[test]
    fn digest_of_empty_list_is_hash_of_empty_string() {
        assert_eq!(
            to_hex(&registrations_digest(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_changes_with_any_field() {
        let base = reg(7, "K3F-92", 2, &[14, 15, 11]);
        let d = registrations_digest(std::slice::from_ref(&base));
        let variants = [
            reg(8, "K3F-92", 2, &[14, 15, 11]),
            reg(7, "K3F-93", 2, &[14, 15, 11]),
            reg(7, "K3F-92", 3, &[14, 15, 11]),
            reg(7, "K3F-92", 2, &[15, 14, 11]),
            reg(7, "K3F-92", 2, &[14, 15]),
        ];
        for v in variants {
            assert_ne!(registrations_digest(std::slice::from_ref(&v)), d, "{v:?}");
        }
    }

    #[test]
    fn seed_known_answer() {
        let secret = Secret::from_bytes([0; 32]);
        let digest = registrations_digest(&[]);
        // SHA-256 of 32 zero bytes followed by SHA-256("").
        assert_eq!(
            to_hex(&seed(&secret, &digest)),
            "1c9ecec90e28d2461650418635878a5c91e49f47586ecf75f2b0cbb94e897112"
        );
    }
}
