-- The language the reservation was made in: its later mails (the reminder)
-- are written in it.
ALTER TABLE reservations ADD COLUMN mail_lang TEXT NOT NULL DEFAULT 'ko' CHECK (mail_lang IN ('ko', 'en'));
