//! Pickup codes (SPEC §7): 8 characters of Crockford base32 from a CSPRNG,
//! shown grouped `ABCD-EFGH`, read back forgivingly (any case, dashes and
//! spaces ignored, the look-alikes O → 0 and I, L → 1).

use rand::Rng;

/// Crockford's base32 alphabet: digits and capitals without I, L, O, U.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a code: 40 bits, about 10^12 codes.
pub const LEN: usize = 8;

/// A new random code from the operating system's CSPRNG (through `rand`'s
/// thread-local generator, reseeded from it).
pub fn generate() -> String {
    let mut rng = rand::rng();
    (0..LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `ABCD-EFGH`: the code as people read it aloud and type it.
pub fn display(code: &str) -> String {
    if code.len() == LEN && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

/// The stored form of what someone typed or a scanner sent, or `None` when it
/// cannot be a code: case does not matter, dashes and spaces are ignored, and
/// O is read as 0, I and L as 1.
pub fn normalise(input: &str) -> Option<String> {
    let mut out = String::with_capacity(LEN);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
        if out.len() > LEN {
            return None;
        }
    }
    (out.len() == LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_eight_characters_of_the_alphabet_and_differ() {
        let codes: Vec<String> = (0..200).map(|_| generate()).collect();
        for c in &codes {
            assert_eq!(c.len(), LEN);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert_eq!(normalise(c).as_deref(), Some(c.as_str()));
        }
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }

    #[test]
    fn the_alphabet_has_no_look_alikes() {
        assert_eq!(ALPHABET.len(), 32);
        for c in [b'I', b'L', b'O', b'U'] {
            assert!(!ALPHABET.contains(&c));
        }
    }

    #[test]
    fn codes_are_shown_in_two_groups() {
        assert_eq!(display("ABCD2345"), "ABCD-2345");
        assert_eq!(display("short"), "short");
    }

    #[test]
    fn typing_ignores_case_dashes_spaces_and_look_alikes() {
        let want = Some("AB01CD1Z".to_owned());
        assert_eq!(normalise("AB01CD1Z"), want);
        assert_eq!(normalise("ab01-cd1z"), want);
        assert_eq!(normalise(" ab01 cd1z "), want);
        assert_eq!(normalise("abOi-cdLz"), want);
        assert_eq!(normalise("ABOI CDLZ"), want);
    }

    #[test]
    fn what_cannot_be_a_code_is_refused() {
        assert_eq!(normalise(""), None);
        assert_eq!(normalise("ABCD-EFG"), None);
        assert_eq!(normalise("ABCD-EFGHJ"), None);
        assert_eq!(normalise("ABCD-EFGU"), None);
        assert_eq!(normalise("ABCD-EF#H"), None);
        assert_eq!(normalise("ABCD-EFGＨ"), None);
    }
}
