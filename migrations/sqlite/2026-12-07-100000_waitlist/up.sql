-- Waiting lists for full windows (SPEC §13). A place freed in a window before
-- it starts is offered to the first in its line whose quota allows: a
-- reservation in status `offered`, held (counted as taken) until
-- `offer_until`, then `active` if accepted, or `declined` / `lapsed`, which
-- give the place and the quota back and pass it on.
--
-- SQLite cannot change a CHECK in place, and `status` is named by the table's
-- own CHECKs, so it cannot be swapped for a new column either: the table is
-- made again with the wider CHECK and the new column, filled with the same
-- ids, and takes the name. The tables that refer to reservations keep
-- referring to it by name; the migrations run with foreign keys off, and
-- `foreign_key_check` must find nothing before they are on again
-- (`db::DbConnection::run_migrations`).
CREATE TABLE reservations_next (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    window_id BIGINT NOT NULL REFERENCES pickup_windows (id),
    store_id BIGINT NOT NULL REFERENCES stores (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    period_start DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'picked_up', 'cancelled', 'expired', 'offered', 'declined', 'lapsed')),
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
    offer_until TIMESTAMP,
    CHECK ((status = 'picked_up') = (picked_up_at IS NOT NULL AND picked_up_by IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL)),
    CHECK ((status = 'picked_up' AND dependant_id IS NOT NULL) = (proxy_checked_at IS NOT NULL)),
    CHECK (status NOT IN ('offered', 'declined', 'lapsed') OR offer_until IS NOT NULL)
);
INSERT INTO reservations_next (id, user_id, person_id, window_id, store_id, quantity, period_start,
    status, pickup_code, created_at, updated_at, cancelled_at, expired_at, picked_up_at,
    picked_up_by, reminded_at, request_id, dependant_id, proxy_checked_at, mail_lang)
SELECT id, user_id, person_id, window_id, store_id, quantity, period_start,
    status, pickup_code, created_at, updated_at, cancelled_at, expired_at, picked_up_at,
    picked_up_by, reminded_at, request_id, dependant_id, proxy_checked_at, mail_lang
FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_next RENAME TO reservations;
CREATE INDEX reservations_window_status ON reservations (window_id, status);
CREATE INDEX reservations_person_period ON reservations (person_id, period_start);
CREATE INDEX reservations_created_at ON reservations (created_at);
CREATE INDEX reservations_picked_up_at ON reservations (picked_up_at);
CREATE UNIQUE INDEX reservations_user_request ON reservations (user_id, request_id);
CREATE INDEX reservations_store_status ON reservations (store_id, status);
-- The minute job looks only at offers still held.
CREATE INDEX reservations_offered ON reservations (offer_until) WHERE status = 'offered';

-- One place in line per person per window, first come first served (`id`).
-- `offer_id` is the reservation offered to this place in line while that
-- offer is held; the row goes when the offer is accepted, declined or lapses,
-- or when its citizen leaves the line.
CREATE TABLE waitlist (
    id INTEGER PRIMARY KEY,
    window_id BIGINT NOT NULL REFERENCES pickup_windows (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    dependant_id BIGINT REFERENCES dependants (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    mail_lang TEXT NOT NULL CHECK (mail_lang IN ('ko', 'en', 'zh-TW')),
    created_at TIMESTAMP NOT NULL,
    offer_id BIGINT UNIQUE REFERENCES reservations (id),
    UNIQUE (window_id, person_id)
);
CREATE INDEX waitlist_user ON waitlist (user_id);

INSERT INTO settings (key, value, updated_at) VALUES
    ('waitlist_hold_minutes', '30', CURRENT_TIMESTAMP)
    ON CONFLICT (key) DO NOTHING;
