-- A window's unbooked places move to the counter when its booking closes:
-- a ledger row of kind `release` (SPEC §3, §6). SQLite cannot change a
-- CHECK in place: the ledger is copied into a table that admits the kind.
CREATE TABLE stock_ledger_new (
    id INTEGER PRIMARY KEY,
    store_day_id BIGINT NOT NULL REFERENCES store_days (id),
    window_id BIGINT REFERENCES pickup_windows (id),
    reservation_id BIGINT REFERENCES reservations (id),
    walk_in_sale_id BIGINT REFERENCES walk_in_sales (id),
    kind TEXT NOT NULL CHECK (kind IN ('allocation', 'capacity', 'reservation', 'cancel', 'expiry', 'pickup', 'walk_in', 'release')),
    supply_delta INTEGER NOT NULL DEFAULT 0,
    capacity_delta INTEGER NOT NULL DEFAULT 0,
    reserved_delta INTEGER NOT NULL DEFAULT 0,
    picked_up_delta INTEGER NOT NULL DEFAULT 0,
    walk_in_delta INTEGER NOT NULL DEFAULT 0,
    actor_user_id BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
INSERT INTO stock_ledger_new SELECT id, store_day_id, window_id, reservation_id, walk_in_sale_id, kind,
    supply_delta, capacity_delta, reserved_delta, picked_up_delta, walk_in_delta, actor_user_id, created_at
    FROM stock_ledger ;
DROP TABLE stock_ledger;
ALTER TABLE stock_ledger_new RENAME TO stock_ledger;
CREATE INDEX stock_ledger_store_day ON stock_ledger (store_day_id);
CREATE INDEX stock_ledger_window ON stock_ledger (window_id);
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
