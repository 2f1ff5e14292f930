-- A reservation form carries a random request id, so that a form sent twice
-- (a double click, a reload, a retry after a lost answer) books once: the
-- second post finds the first reservation by (user, request id).
ALTER TABLE reservations ADD COLUMN request_id TEXT
    CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 64);
CREATE UNIQUE INDEX reservations_user_request ON reservations (user_id, request_id);
