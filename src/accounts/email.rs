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
                    || c.is_control()
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

/// A person's name as shown on pages: 1–100 characters, no control characters.
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
        if text.chars().any(char::is_control) {
            return Err("form.error.invalid_characters");
        }
        Ok(DisplayName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
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
}
