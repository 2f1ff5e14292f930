-- Traditional Chinese joins the languages a reservation's mails are written
-- in. SQLite cannot change a column's CHECK in place: the column is made
-- again under a new name with the wider check, filled, and takes the name.
ALTER TABLE reservations ADD COLUMN mail_lang_next TEXT NOT NULL DEFAULT 'ko' CHECK (mail_lang_next IN ('ko', 'en', 'zh-TW'));
UPDATE reservations SET mail_lang_next = mail_lang;
ALTER TABLE reservations DROP COLUMN mail_lang;
ALTER TABLE reservations RENAME COLUMN mail_lang_next TO mail_lang;
