-- Reservations made in Chinese fall back to Korean, the default language.
ALTER TABLE reservations ADD COLUMN mail_lang_prev TEXT NOT NULL DEFAULT 'ko' CHECK (mail_lang_prev IN ('ko', 'en'));
UPDATE reservations SET mail_lang_prev = CASE WHEN mail_lang = 'en' THEN 'en' ELSE 'ko' END;
ALTER TABLE reservations DROP COLUMN mail_lang;
ALTER TABLE reservations RENAME COLUMN mail_lang_prev TO mail_lang;
