ALTER TABLE reservations DROP COLUMN mail_lang;
