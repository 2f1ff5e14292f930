-- A place in line joined for the whole day: the first offer in any window of
-- that store-day withdraws the person's other such places that day.
ALTER TABLE waitlist ADD COLUMN whole_day BOOLEAN NOT NULL DEFAULT false;
