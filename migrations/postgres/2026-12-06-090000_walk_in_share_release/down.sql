DELETE FROM settings WHERE key IN ('walk_in_share_percent', 'booking_close_minutes', 'max_dependants', 'proxy_born_from', 'proxy_born_until');
DROP INDEX pickup_windows_unreleased;
DELETE FROM stock_ledger WHERE kind = 'release';
ALTER TABLE stock_ledger DROP CONSTRAINT stock_ledger_kind_check;
ALTER TABLE stock_ledger ADD CONSTRAINT stock_ledger_kind_check
    CHECK (kind IN ('allocation', 'capacity', 'reservation', 'cancel', 'expiry', 'pickup', 'walk_in'));
