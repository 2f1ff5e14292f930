-- Reservations made in Chinese fall back to Korean, the default language.
ALTER TABLE reservations DROP CONSTRAINT reservations_mail_lang_check;
UPDATE reservations SET mail_lang = 'ko' WHERE mail_lang NOT IN ('ko', 'en');
ALTER TABLE reservations ADD CONSTRAINT reservations_mail_lang_check CHECK (mail_lang IN ('ko', 'en'));
