-- The whole data model. Counters are kept next to the rows they limit and
-- guarded by CHECK constraints, so that no statement can ever commit an
-- oversell or a quota breach, whatever the application does.

CREATE TABLE stores (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE CHECK (length(code) = 8 AND code NOT GLOB '*[^0-9]*'),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    addr TEXT NOT NULL CHECK (length(addr) BETWEEN 1 AND 500),
    store_type TEXT NOT NULL CHECK (store_type IN ('01', '02', '03')),
    region TEXT NOT NULL,
    lat DOUBLE NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng DOUBLE NOT NULL CHECK (lng BETWEEN -180 AND 180),
    suspended BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX stores_region ON stores (region);

-- A person known by national ID: a citizen account, a walk-in buyer, or both.
-- Only the keyed hash of the number is kept (SPEC 5).
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    national_id_hash TEXT NOT NULL UNIQUE CHECK (length(national_id_hash) = 64),
    birth_date DATE NOT NULL,
    national_id_masked TEXT NOT NULL CHECK (length(national_id_masked) = 14),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('citizen', 'pharmacist', 'admin')),
    email TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    password_hash TEXT NOT NULL,
    person_id BIGINT UNIQUE REFERENCES people (id),
    store_id BIGINT REFERENCES stores (id),
    email_verified_at TIMESTAMP,
    disabled_at TIMESTAMP,
    session_epoch BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK ((role = 'pharmacist') = (store_id IS NOT NULL)),
    CHECK ((role = 'citizen') = (person_id IS NOT NULL))
);
CREATE INDEX users_store ON users (store_id);

-- Single-use account tokens (e-mail verification, password reset); only a hash is kept.
CREATE TABLE account_tokens (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    purpose TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- A store's supply for one date. walk_in may use only what no window holds;
-- reservations may use only what their windows hold.
CREATE TABLE store_days (
    id INTEGER PRIMARY KEY,
    store_id BIGINT NOT NULL REFERENCES stores (id),
    day DATE NOT NULL,
    supply INTEGER NOT NULL CHECK (supply >= 0),
    window_capacity INTEGER NOT NULL DEFAULT 0 CHECK (window_capacity >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    picked_up INTEGER NOT NULL DEFAULT 0 CHECK (picked_up >= 0),
    walk_in INTEGER NOT NULL DEFAULT 0 CHECK (walk_in >= 0),
    no_show INTEGER NOT NULL DEFAULT 0 CHECK (no_show >= 0),
    stock_changed_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (store_id, day),
    CHECK (window_capacity + walk_in <= supply),
    CHECK (reserved + picked_up + walk_in <= supply)
);
CREATE INDEX store_days_day ON store_days (day);

CREATE TABLE pickup_windows (
    id INTEGER PRIMARY KEY,
    store_day_id BIGINT NOT NULL REFERENCES store_days (id),
    store_id BIGINT NOT NULL REFERENCES stores (id),
    day DATE NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    picked_up INTEGER NOT NULL DEFAULT 0 CHECK (picked_up >= 0),
    UNIQUE (store_day_id, starts_at),
    CHECK (ends_at > starts_at),
    CHECK (reserved + picked_up <= capacity)
);
CREATE INDEX pickup_windows_store_day ON pickup_windows (store_id, day);

-- What one person has used of the quota in one period (reserved + picked up + walk-in).
CREATE TABLE quota_usage (
    person_id BIGINT NOT NULL REFERENCES people (id),
    period_start DATE NOT NULL,
    used INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (person_id, period_start)
);

CREATE TABLE reservations (
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
    CHECK ((status = 'picked_up') = (picked_up_at IS NOT NULL AND picked_up_by IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL))
);
CREATE INDEX reservations_user ON reservations (user_id, created_at);
CREATE INDEX reservations_window_status ON reservations (window_id, status);
CREATE INDEX reservations_person_period ON reservations (person_id, period_start);

CREATE TABLE walk_in_sales (
    id INTEGER PRIMARY KEY,
    store_day_id BIGINT NOT NULL REFERENCES store_days (id),
    store_id BIGINT NOT NULL REFERENCES stores (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    period_start DATE NOT NULL,
    sold_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX walk_in_sales_store_day ON walk_in_sales (store_day_id);
CREATE INDEX walk_in_sales_person_period ON walk_in_sales (person_id, period_start);

-- Every change of a store-day's or a window's counters, written in the same
-- transaction as the change: the counters always equal the sums of the deltas.
CREATE TABLE stock_ledger (
    id INTEGER PRIMARY KEY,
    store_day_id BIGINT NOT NULL REFERENCES store_days (id),
    window_id BIGINT REFERENCES pickup_windows (id),
    reservation_id BIGINT REFERENCES reservations (id),
    walk_in_sale_id BIGINT REFERENCES walk_in_sales (id),
    kind TEXT NOT NULL CHECK (kind IN ('allocation', 'capacity', 'reservation', 'cancel', 'expiry', 'pickup', 'walk_in')),
    supply_delta INTEGER NOT NULL DEFAULT 0,
    capacity_delta INTEGER NOT NULL DEFAULT 0,
    reserved_delta INTEGER NOT NULL DEFAULT 0,
    picked_up_delta INTEGER NOT NULL DEFAULT 0,
    walk_in_delta INTEGER NOT NULL DEFAULT 0,
    actor_user_id BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX stock_ledger_store_day ON stock_ledger (store_day_id);
CREATE INDEX stock_ledger_window ON stock_ledger (window_id);

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    updated_by BIGINT REFERENCES users (id)
);
INSERT INTO settings (key, value, updated_at) VALUES
    ('quota_per_period', '2', CURRENT_TIMESTAMP),
    ('period', 'iso_week', CURRENT_TIMESTAMP),
    ('timezone', 'Asia/Seoul', CURRENT_TIMESTAMP),
    ('rotation', 'off', CURRENT_TIMESTAMP),
    ('booking_horizon_days', '7', CURRENT_TIMESTAMP),
    ('cancel_cutoff_minutes', '60', CURRENT_TIMESTAMP),
    ('pickup_grace_minutes', '30', CURRENT_TIMESTAMP),
    ('window_template', '09:00-12:00,12:00-15:00,15:00-18:00', CURRENT_TIMESTAMP);

-- Transactional outbox: written with the change it reports, sent by a background worker.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    actor_user_id BIGINT REFERENCES users (id),
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at);

-- Fixed-window request counters shared by every app instance (login, sign-up,
-- password reset, walk-in look-up): one row per key and window, raised by a
-- conditional update so that concurrent requests cannot exceed the limit.
CREATE TABLE rate_limits (
    bucket TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits INTEGER NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (bucket, window_start)
);
