//! E-mail (SPEC §9): the outbox table that features write to inside their own
//! transaction, and the background sender that delivers it with retry and back-off
//! over SMTP or into `.eml` files. A mail server that is down delays mail; it never
//! fails or loses the change the mail reports.

pub mod outbox;
pub mod sender;
