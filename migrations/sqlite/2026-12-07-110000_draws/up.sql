-- Draws instead of a rush (SPEC §13). An administrator opens a draw for a
-- set of days (all stores, or one region): the windows of those days are the
-- draw's (`draw_windows`, and `pickup_windows.draw_id` while it is not done,
-- which ordinary booking refuses). Citizens register up to three ranked
-- choices during the registration period; at its close one instance runs
-- the draw (claimed in `draws`), from a seed committed before registration
-- opened: `commitment` = SHA-256 of `secret`, revealed once it is drawn.
CREATE TABLE draws (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- NULL: every store.
    region TEXT,
    first_day DATE NOT NULL,
    last_day DATE NOT NULL,
    opens_at TIMESTAMP NOT NULL,
    closes_at TIMESTAMP NOT NULL,
    results_at TIMESTAMP NOT NULL,
    secret TEXT NOT NULL CHECK (length(secret) = 64),
    commitment TEXT NOT NULL CHECK (length(commitment) = 64),
    -- Set when the registrations are frozen at the run's start.
    digest TEXT CHECK (digest IS NULL OR length(digest) = 64),
    seed TEXT CHECK (seed IS NULL OR length(seed) = 64),
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'drawing', 'done')),
    -- The run's lease: another instance may take over a run whose lease is old.
    claimed_at TIMESTAMP,
    -- Registrations settled so far, in drawn order: where a run resumes.
    drawn INTEGER NOT NULL DEFAULT 0 CHECK (drawn >= 0),
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    CHECK (first_day <= last_day),
    CHECK (opens_at < closes_at AND closes_at <= results_at),
    CHECK ((state = 'open') = (seed IS NULL))
);

-- The windows a draw allocates, with their free places when it was frozen.
CREATE TABLE draw_windows (
    draw_id BIGINT NOT NULL REFERENCES draws (id),
    window_id BIGINT NOT NULL REFERENCES pickup_windows (id),
    free_at_start INTEGER,
    PRIMARY KEY (draw_id, window_id)
);

ALTER TABLE pickup_windows ADD COLUMN draw_id BIGINT REFERENCES draws (id);

-- One registration per person per draw, editable until it closes; its
-- place in the drawn order and its outcome once drawn, with the quota its
-- person had left for each choice at its turn (what `draw-verify` replays).
CREATE TABLE draw_entries (
    id INTEGER PRIMARY KEY,
    draw_id BIGINT NOT NULL REFERENCES draws (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    dependant_id BIGINT REFERENCES dependants (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    choice1 BIGINT NOT NULL REFERENCES pickup_windows (id),
    choice2 BIGINT REFERENCES pickup_windows (id),
    choice3 BIGINT REFERENCES pickup_windows (id),
    pseudonym TEXT NOT NULL,
    mail_lang TEXT NOT NULL CHECK (mail_lang IN ('ko', 'en', 'zh-TW')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    position INTEGER,
    quota_left1 INTEGER,
    quota_left2 INTEGER,
    quota_left3 INTEGER,
    outcome TEXT CHECK (outcome IN ('won', 'not_drawn')),
    won_window_id BIGINT REFERENCES pickup_windows (id),
    reservation_id BIGINT REFERENCES reservations (id),
    UNIQUE (draw_id, person_id),
    CHECK ((outcome = 'won') = (reservation_id IS NOT NULL AND won_window_id IS NOT NULL)),
    CHECK (outcome IS NULL OR position IS NOT NULL)
);
CREATE INDEX draw_entries_order ON draw_entries (draw_id, position);
CREATE INDEX draw_entries_user ON draw_entries (user_id);
