//! Passwords: 8–128 characters, hashed with argon2id at OWASP's minimum cost or above.

use std::cell::RefCell;
use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::i18n::Tr;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// m = 19 MiB, t = 2, p = 1: OWASP's recommended floor for argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("too short")]
    TooShort,
    #[error("too long")]
    TooLong,
    /// Among the most common passwords, or as easy to guess as one.
    #[error("too easy to guess")]
    TooGuessable,
}

impl PasswordRule {
    /// What the form says next to the password field.
    pub fn message(self, t: &Tr) -> String {
        match self {
            PasswordRule::TooShort => t.fmt("form.error.password_short", &[("min", &MIN_LEN)]),
            PasswordRule::TooLong => t.fmt("form.error.password_long", &[("max", &MAX_LEN)]),
            PasswordRule::TooGuessable => t.get("form.error.password_guessable").to_owned(),
        }
    }
}

/// argon2 could not hash (it refuses only parameters or outputs out of its
/// range, so this is a bug or a broken build, never the user's input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argon2: {0}")]
pub struct HashFailed(String);

/// A password that meets the length rule and is not among the easiest to guess.
/// Length is counted in characters, not bytes, so a Korean passphrase is judged
/// like any other.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(text: &str) -> Result<NewPassword, PasswordRule> {
        let len = text.chars().count();
        if len < MIN_LEN {
            Err(PasswordRule::TooShort)
        } else if len > MAX_LEN {
            Err(PasswordRule::TooLong)
        } else if too_guessable(text) {
            Err(PasswordRule::TooGuessable)
        } else {
            Ok(NewPassword(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// zxcvbn's estimate: its dictionaries hold the most common passwords (and
/// words, names, keyboard runs, dates, repeats and sequences), and a score below
/// 2 means fewer than about a million guesses — `password1`, `qwerty123`,
/// `11111111`, `abcd1234`. Only the first 64 characters are judged: the
/// estimate grows costly with length, and a longer password is not guessable
/// through its tail alone.
fn too_guessable(text: &str) -> bool {
    let head: String = text.chars().take(64).collect();
    zxcvbn::zxcvbn(&head, &[]).score() < zxcvbn::Score::Two
}

fn hasher() -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

thread_local! {
    /// This thread's argon2 working memory (19 MiB at our parameters), kept
    /// from one hash to the next. Allocated afresh each time, it went back to
    /// the allocator after every hash, and glibc, whose threshold for serving
    /// large blocks with their own mapping rises with each one freed, soon
    /// kept them in its arenas instead of returning them: a login storm left
    /// the server at 130–260 MB instead of about 50 (docs/benchmarks.md).
    /// Hashing runs on the hashing pool's few long-lived threads, so this is
    /// a fixed 19 MiB each.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `hasher` over this thread's kept memory. argon2 writes every block
/// before it reads it, so what the memory held before does not matter.
fn hash_into(
    hasher: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = hasher.params().block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        hasher.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

/// Hashes a password into a PHC string. CPU-heavy: call it off the async workers.
pub fn hash(password: &NewPassword) -> Result<String, HashFailed> {
    let failed = |e: &dyn std::fmt::Display| HashFailed(e.to_string());
    let hasher = hasher().map_err(|e| HashFailed(format!("parameters: {e}")))?;
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| failed(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    hash_into(&hasher, password.as_str().as_bytes(), salt_bytes, &mut out)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(hasher.params()).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Checks a password against a stored PHC string. CPU-heavy: off the async workers.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The stored string carries its own parameters; verification follows them.
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let hasher = Argon2::new(algorithm, version, params);
    if hash_into(&hasher, password.as_bytes(), salt_bytes, &mut out).is_err() {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A hash of a random password, made once, to verify against when a login names
/// no account.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let mut bytes = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hash(&NewPassword(super::hex(&bytes))).ok()
});

/// Checks a login's password against the account's hash, or, when there is no
/// account, spends the same work on a dummy hash and refuses: "no such e-mail"
/// and "wrong password" must not be told apart by their timing. CPU-heavy: off
/// the async workers.
pub fn verify_login(password: &str, account_phc: Option<&str>) -> bool {
    match (account_phc, DUMMY_HASH.as_deref()) {
        (Some(phc), _) => verify(password, phc),
        (None, Some(dummy)) => {
            verify(password, dummy);
            false
        }
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(
            NewPassword::parse("short").err(),
            Some(PasswordRule::TooShort)
        );
        assert!(NewPassword::parse("마스크예약비밀번호").is_ok());
        assert!(NewPassword::parse("7tQ#mzp2").is_ok());
        let long: String = "correct horse battery staple "
            .chars()
            .cycle()
            .take(128)
            .collect();
        assert!(NewPassword::parse(&long).is_ok());
        let longer = format!("{long}x");
        assert_eq!(
            NewPassword::parse(&longer).err(),
            Some(PasswordRule::TooLong)
        );
    }

    #[test]
    fn the_most_common_passwords_are_refused() {
        for common in [
            "password",
            "password1",
            "12345678",
            "123456789",
            "qwerty123",
            "11111111",
            "abcd1234",
            "iloveyou",
            "1q2w3e4r",
            "qwertyuiop",
        ] {
            assert_eq!(
                NewPassword::parse(common).err(),
                Some(PasswordRule::TooGuessable),
                "{common}"
            );
        }
        for fine in [
            "correct horse battery",
            "a new secret passphrase",
            "마스크는 약국에서 받아요",
        ] {
            assert!(NewPassword::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn hashes_are_argon2id_with_at_least_owasp_parameters_and_verify() {
        let pw = NewPassword::parse("correct horse battery").unwrap();
        let phc = hash(&pw).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse battery!", &phc));
        assert!(!verify("anything", "not a hash"));
        assert_ne!(phc, hash(&pw).unwrap(), "salted");
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hashing_and_verification() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash(&NewPassword::parse("correct horse battery").unwrap()).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = hasher()
            .unwrap()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify("correct horse battery", &theirs));
        assert!(!verify("correct horse batter", &theirs));
        // A stored hash with other parameters (argon2i, less memory) still
        // verifies by its own, on the same thread's kept memory.
        let other = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(8 * 1024, 3, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify("pw", &other));
        assert!(!verify("pW", &other));
        assert!(verify("correct horse battery", &ours));
    }

    #[test]
    fn a_login_without_an_account_is_refused_whatever_the_password() {
        let phc = hash(&NewPassword::parse("correct horse battery").unwrap()).unwrap();
        assert!(verify_login("correct horse battery", Some(&phc)));
        assert!(!verify_login("wrong", Some(&phc)));
        assert!(!verify_login("correct horse battery", None));
        assert!(!verify_login("", None));
    }
}
