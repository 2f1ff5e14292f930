-- A pharmacist may choose to hand over at the first scan of a code, without
-- the confirm button: a setting of their own account.
ALTER TABLE users ADD COLUMN confirm_on_scan BOOLEAN NOT NULL DEFAULT FALSE;
-- A walk-in sale undone by its pharmacist within minutes keeps its row (the
-- ledger rows point at it) and no longer counts: store-day, quota and
-- `verify` all sum the sales not undone.
ALTER TABLE walk_in_sales ADD COLUMN undone_at TIMESTAMP;
CREATE INDEX reservations_store_status ON reservations (store_id, status);
