-- Traditional Chinese joins the languages a reservation's mails are written in.
ALTER TABLE reservations DROP CONSTRAINT reservations_mail_lang_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_mail_lang_check CHECK (mail_lang IN ('ko', 'en', 'zh-TW'));
