-- A window's unbooked places move to the counter when its booking closes:
-- a ledger row of kind `release` (SPEC §3, §6).
ALTER TABLE stock_ledger DROP CONSTRAINT stock_ledger_kind_check;
ALTER TABLE stock_ledger ADD CONSTRAINT stock_ledger_kind_check
    CHECK (kind IN ('allocation', 'capacity', 'reservation', 'cancel', 'expiry', 'pickup', 'walk_in', 'release'));
-- Windows whose booking may have closed with places left: the release job
-- looks only at these.
CREATE INDEX pickup_windows_unreleased ON pickup_windows (ends_at)
    WHERE capacity > reserved + picked_up;

-- The counter's share of every allocation, the moment a window stops taking
-- bookings, and who may be booked for (SPEC §3, §12).
INSERT INTO settings (key, value, updated_at) VALUES
    ('walk_in_share_percent', '30', CURRENT_TIMESTAMP),
    ('booking_close_minutes', '30', CURRENT_TIMESTAMP),
    ('max_dependants', '4', CURRENT_TIMESTAMP),
    ('proxy_born_from', '2010', CURRENT_TIMESTAMP),
    ('proxy_born_until', '1940', CURRENT_TIMESTAMP);
