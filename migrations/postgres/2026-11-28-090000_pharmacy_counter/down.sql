DROP INDEX reservations_store_status;
ALTER TABLE walk_in_sales DROP COLUMN undone_at;
ALTER TABLE users DROP COLUMN confirm_on_scan;
