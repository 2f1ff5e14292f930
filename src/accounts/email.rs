//! E-mail addresses and display names, parsed at the edge.

/// A plausible e-mail address, trimmed and lower-cased. Whether it is real is
/// proved by the verification mail, not by a regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("empty")]
    Empty,
    #[error("too long")]
    TooLong,
    #[error("not an e-mail address")]
    Invalid,
}

impl Email {
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let text = input.trim().to_lowercase();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        if text.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = text.rsplit_once('@').ok_or(EmailError::Invalid)?;
        let ok_chars = |s: &str| {
            !s.chars().any(|c| {
                c.is_whitespace()
                    || is_unsafe_in_text(c)
                    || matches!(c, '<' | '>' | '"' | ',' | ';' | '\\' | '@')
            })
        };
        let domain_ok = domain.len() <= 253
            && domain.contains('.')
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || !ok_chars(local) || !domain_ok {
            return Err(EmailError::Invalid);
        }
        Ok(Email(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn message_key(e: EmailError) -> &'static str {
        match e {
            EmailError::Empty => "form.error.required",
            EmailError::TooLong => "form.error.too_long",
            EmailError::Invalid => "form.error.email",
        }
    }
}

/// Characters that must never reach a page from user input: control characters
/// (C0, DEL, C1), which corrupt what a page or a log shows, and the bidi
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make
/// text display in another order than it is stored, so a name can pass for
/// another or spill its direction into the text around it.
pub fn is_unsafe_in_text(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A person's name as shown on pages: 1–100 characters, none of them
/// [unsafe in text](is_unsafe_in_text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(input: &str) -> Result<DisplayName, &'static str> {
        let text = input.trim();
        if text.is_empty() {
            return Err("form.error.required");
        }
        if text.chars().count() > 100 {
            return Err("form.error.too_long");
        }
        if text.chars().any(is_unsafe_in_text) {
            return Err("form.error.invalid_characters");
        }
        Ok(DisplayName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name as the counter and a proxy reservation show it: first and last
/// character, the rest starred (김지수 → 김*수, 김지 → 김*), enough to
/// recognise, not to identify.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, _] => format!("{first}*"),
        [first, middle @ .., last] => {
            format!("{first}{}{last}", "*".repeat(middle.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Kim@Example.COM ").unwrap().as_str(),
            "kim@example.com"
        );
        assert!(Email::parse("홍길동@우체국.한국").is_ok());
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@exa mple.com",
            "a@.example.com",
            "a@example..com",
            "a@example.com.",
            "<a>@example.com",
            "a@b@c.com",
            "a\u{202e}moc@example.com",
            "a\u{1b}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn masked_names_keep_their_first_and_last_character() {
        assert_eq!(mask_name("김지수"), "김*수");
        assert_eq!(mask_name("김지"), "김*");
        assert_eq!(mask_name("남궁민수"), "남**수");
        assert_eq!(mask_name("홍길동"), "홍*동");
        assert_eq!(mask_name("김"), "김");
        assert_eq!(mask_name("  "), "");
        assert_eq!(mask_name(" 김지수 "), "김*수");
        assert_eq!(mask_name("Kim Ji"), "K****i");
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(DisplayName::parse(" 홍길동 ").unwrap().as_str(), "홍길동");
        assert_eq!(DisplayName::parse(""), Err("form.error.required"));
        assert_eq!(
            DisplayName::parse(&"가".repeat(101)),
            Err("form.error.too_long")
        );
        assert_eq!(
            DisplayName::parse("a\u{0}b"),
            Err("form.error.invalid_characters")
        );
        assert!(
            DisplayName::parse("<script>alert(1)</script>").is_ok(),
            "escaped on output, not refused"
        );
    }

    #[test]
    fn names_with_control_or_bidi_override_characters_are_refused() {
        for bad in [
            "홍\u{0}길동",
            "홍\t길동",
            "홍\n길동",
            "홍\r길동",
            "홍\u{1b}[31m길동",
            "홍\u{7f}길동",
            "홍\u{80}길동",
            "홍\u{9f}길동",
            "\u{202a}홍길동",
            "\u{202b}홍길동",
            "\u{202c}홍길동",
            "\u{202d}홍길동",
            "홍길동\u{202e}",
            "홍\u{2066}길동",
            "홍\u{2067}길동",
            "홍\u{2068}길동",
            "홍\u{2069}길동",
        ] {
            assert_eq!(
                DisplayName::parse(bad),
                Err("form.error.invalid_characters"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_in_any_script_with_ordinary_marks_are_accepted() {
        for good in [
            "홍길동",
            "Kim Min-jun",
            "O'Brien",
            "محمد",
            "José Müller",
            "田中 太郎",
            // Boundaries of the refused ranges.
            "a\u{a0}b",
            "a\u{2029}b",
            "a\u{206a}b",
        ] {
            assert!(DisplayName::parse(good).is_ok(), "{good:?}");
        }
    }
}
