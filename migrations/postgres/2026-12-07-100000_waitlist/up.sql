-- Waiting lists for full windows (SPEC §13). A place freed in a window before
-- it starts is offered to the first in its line whose quota allows: a
-- reservation in status `offered`, held (counted as taken) until
-- `offer_until`, then `active` if accepted, or `declined` / `lapsed`, which
-- give the place and the quota back and pass it on.
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('active', 'picked_up', 'cancelled', 'expired', 'offered', 'declined', 'lapsed'));
ALTER TABLE reservations ADD COLUMN offer_until TIMESTAMP;
ALTER TABLE reservations ADD CONSTRAINT reservations_offer_until
    CHECK (status NOT IN ('offered', 'declined', 'lapsed') OR offer_until IS NOT NULL);
-- The minute job looks only at offers still held.
CREATE INDEX reservations_offered ON reservations (offer_until) WHERE status = 'offered';

-- One place in line per person per window, first come first served (`id`).
-- `offer_id` is the reservation offered to this place in line while that
-- offer is held; the row goes when the offer is accepted, declined or lapses,
-- or when its citizen leaves the line.
CREATE TABLE waitlist (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
