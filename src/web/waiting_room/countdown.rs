//! The seconds before a page that made its visitor wait (the waiting room,
//! the 429 page) may be tried again: said in the visitor's language with the
//! right plural, counted down by `static/js/waiting-room.js`, and kept true
//! without JavaScript: the words as rendered ask for the "try again" button
//! once the time is up. No `<meta http-equiv="refresh">`: a page that moves on
//! by itself must let its reader stop it, which only the script's button does.

use crate::i18n::Tr;

/// What `templates/countdown.html` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Countdown {
    pub seconds: u64,
    /// The words as rendered, true without JavaScript (the script replaces
    /// them with its countdown).
    pub text: String,
    /// The script's words for one second and for any other number
    /// (`{seconds}` left in for it to fill).
    pub one: String,
    pub other: String,
    /// The script's words when the time is up and there is nothing to open.
    pub done: String,
    /// Opened by the script when the time is up. None for a form that has
    /// to be sent again, or that cannot be.
    pub url: Option<String>,
}

impl Countdown {
    /// A page whose script tries again by itself: opens a `GET` address
    /// again, or sends a kept form again (`url` None). Without JavaScript
    /// its visitor presses the button.
    pub fn retry(t: &Tr, seconds: u64, url: Option<String>) -> Countdown {
        let (one, other) = t.count_forms("waiting_room.retry_in");
        Countdown {
            seconds,
            text: t.count("waiting_room.press_in", seconds, &[("seconds", &seconds)]),
            one: one.to_owned(),
            other: other.to_owned(),
            done: t.get("waiting_room.try_now").to_owned(),
            url,
        }
    }

    /// A page that may be tried again after the wait, but only by hand: a
    /// form was refused, and what it sent is not here to send again.
    pub fn by_hand(t: &Tr, seconds: u64) -> Countdown {
        let (one, other) = t.count_forms("waiting_room.may_retry_in");
        Countdown {
            seconds,
            text: t.count(
                "waiting_room.may_retry_in",
                seconds,
                &[("seconds", &seconds)],
            ),
            one: one.to_owned(),
            other: other.to_owned(),
            done: t.get("waiting_room.try_now").to_owned(),
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::i18n::{Catalog, Lang};

    fn tr(lang: Lang) -> Tr {
        Tr::new(Arc::new(Catalog::load().unwrap()), lang)
    }

    #[test]
    fn one_second_is_said_in_the_singular_in_english_and_as_usual_in_korean() {
        let en = Countdown::retry(&tr(Lang::En), 1, Some("/stores".into()));
        assert_eq!(en.text, "Press “Try again” in 1 second.");
        assert_eq!(en.one, "Trying again in {seconds} second.");
        assert_eq!(en.other, "Trying again in {seconds} seconds.");
        let ko = Countdown::retry(&tr(Lang::Ko), 1, Some("/stores".into()));
        assert_eq!(ko.text, "1초 뒤에 '다시 시도'를 눌러 주세요.");
    }

    #[test]
    fn the_words_without_javascript_ask_for_the_button() {
        let c = Countdown::retry(&tr(Lang::En), 5, None);
        assert_eq!(c.text, "Press “Try again” in 5 seconds.");
        assert_eq!(c.url, None);
        let c = Countdown::by_hand(&tr(Lang::Ko), 30);
        assert_eq!(c.text, "30초 뒤에 다시 시도할 수 있습니다.");
    }
}
