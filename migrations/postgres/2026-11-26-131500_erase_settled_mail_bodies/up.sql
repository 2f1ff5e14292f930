-- Messages already sent or given up on still hold their subject and body, and
-- with them verification and reset links that may still work. From now on the
-- statement that settles a message erases them; this erases what was settled
-- before.
UPDATE mail_outbox
SET subject = '', body_text = '', body_html = NULL
WHERE status IN ('sent', 'failed');
