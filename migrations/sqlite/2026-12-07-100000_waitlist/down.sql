DELETE FROM settings WHERE key = 'waitlist_hold_minutes';
DROP TABLE waitlist;
DROP INDEX reservations_offered;
-- Offers held or ended have no place in the narrower table.
DELETE FROM stock_ledger WHERE reservation_id IN
    (SELECT id FROM reservations WHERE status IN ('offered', 'declined', 'lapsed'));
CREATE TABLE reservations_prev (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    window_id BIGINT NOT NULL REFERENCES pickup_windows (id),
    store_id BIGINT NOT NULL REFERENCES stores (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    period_start DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'picked_up', 'cancelled', 'expired')),
    pickup_code TEXT NOT NULL UNIQUE CHECK (length(pickup_code) = 8),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    cancelled_at TIMESTAMP,
    expired_at TIMESTAMP,
    picked_up_at TIMESTAMP,
    picked_up_by BIGINT REFERENCES users (id),
    reminded_at TIMESTAMP,
    request_id TEXT CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 64),
    dependant_id BIGINT REFERENCES dependants (id),
    proxy_checked_at TIMESTAMP,
    mail_lang TEXT NOT NULL DEFAULT 'ko' CHECK (mail_lang IN ('ko', 'en', 'zh-TW')),
    CHECK ((status = 'picked_up') = (picked_up_at IS NOT NULL AND picked_up_by IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL)),
    CHECK ((status = 'picked_up' AND dependant_id IS NOT NULL) = (proxy_checked_at IS NOT NULL))
);
INSERT INTO reservations_prev (id, user_id, person_id, window_id, store_id, quantity, period_start,
    status, pickup_code, created_at, updated_at, cancelled_at, expired_at, picked_up_at,
    picked_up_by, reminded_at, request_id, dependant_id, proxy_checked_at, mail_lang)
SELECT id, user_id, person_id, window_id, store_id, quantity, period_start,
    status, pickup_code, created_at, updated_at, cancelled_at, expired_at, picked_up_at,
    picked_up_by, reminded_at, request_id, dependant_id, proxy_checked_at, mail_lang
FROM reservations WHERE status NOT IN ('offered', 'declined', 'lapsed');
DROP TABLE reservations;
ALTER TABLE reservations_prev RENAME TO reservations;
CREATE INDEX reservations_window_status ON reservations (window_id, status);
CREATE INDEX reservations_person_period ON reservations (person_id, period_start);
CREATE INDEX reservations_created_at ON reservations (created_at);
CREATE INDEX reservations_picked_up_at ON reservations (picked_up_at);
CREATE UNIQUE INDEX reservations_user_request ON reservations (user_id, request_id);
CREATE INDEX reservations_store_status ON reservations (store_id, status);
