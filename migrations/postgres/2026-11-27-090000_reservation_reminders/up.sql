-- A reminder is mailed once per reservation: the claim that sends it sets
-- reminded_at, so two instances never both send it.
ALTER TABLE reservations ADD COLUMN reminded_at TIMESTAMP;
INSERT INTO settings (key, value, updated_at) VALUES ('reminder_lead_minutes', '60', CURRENT_TIMESTAMP);
-- The every-minute jobs look for windows that still hold active reservations:
-- those whose end passed (no-show expiry) and those about to start
-- (reminders). Past windows are almost all settled (reserved = 0), so
-- partial indexes stay small however many days have gone by.
CREATE INDEX pickup_windows_holding_by_end ON pickup_windows (ends_at) WHERE reserved > 0;
CREATE INDEX pickup_windows_holding_by_start ON pickup_windows (starts_at) WHERE reserved > 0;
