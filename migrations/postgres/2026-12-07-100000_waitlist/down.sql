DELETE FROM settings WHERE key = 'waitlist_hold_minutes';
DROP TABLE waitlist;
DROP INDEX reservations_offered;
ALTER TABLE reservations DROP CONSTRAINT reservations_offer_until;
ALTER TABLE reservations DROP COLUMN offer_until;
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('active', 'picked_up', 'cancelled', 'expired'));
