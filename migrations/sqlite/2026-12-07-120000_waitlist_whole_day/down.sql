ALTER TABLE waitlist DROP COLUMN whole_day;
