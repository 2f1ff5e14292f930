-- The people a citizen books for (SPEC §12): children and the elderly who
-- cannot book themselves. A dependant is a person (the keyed hash of their
-- national ID in `people`, never the number) linked to one guardian account
-- at a time. A link that ends — removed by the guardian, or because the
-- person signed up for an account of their own — keeps its row with
-- `ended_at` and why, so that a reservation made under it stays explained.
CREATE TABLE dependants (
    id INTEGER PRIMARY KEY,
    guardian_user_id BIGINT NOT NULL REFERENCES users (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    -- The name the guardian gave: shown masked at the counter.
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    end_reason TEXT CHECK (end_reason IN ('removed', 'own_account')),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
-- One guardian at a time: at most one current link per person. Whether the
-- person has an account of their own is decided in the same write as the
-- link (SQLite's writes are serialised; `dependants::service`).
CREATE UNIQUE INDEX dependants_current_person ON dependants (person_id) WHERE ended_at IS NULL;
CREATE INDEX dependants_guardian ON dependants (guardian_user_id, person_id);

-- A reservation made for a dependant names the link it was made under
-- (`person_id` is the dependant, `user_id` the guardian). When such a
-- reservation is handed over, the pharmacist has seen the family documents:
-- `proxy_checked_at`, set with the handover (by `picked_up_by`), and only then.
-- SQLite cannot add a table's CHECK in place; a column's may name the others.
ALTER TABLE reservations ADD COLUMN dependant_id BIGINT REFERENCES dependants (id);
ALTER TABLE reservations ADD COLUMN proxy_checked_at TIMESTAMP
    CHECK ((status = 'picked_up' AND dependant_id IS NOT NULL) = (proxy_checked_at IS NOT NULL));

-- A walk-in sale bought by someone for another person: `person_id` is whose
-- quota it took, `proxy_person_id` the person who came and bought (the family
-- documents were seen: a proxy sale needs the tick).
ALTER TABLE walk_in_sales ADD COLUMN proxy_person_id BIGINT REFERENCES people (id)
    CHECK (proxy_person_id IS NULL OR proxy_person_id <> person_id);
