ALTER TABLE walk_in_sales DROP CONSTRAINT walk_in_sales_proxy_other;
ALTER TABLE walk_in_sales DROP COLUMN proxy_person_id;
ALTER TABLE reservations DROP CONSTRAINT reservations_proxy_checked;
ALTER TABLE reservations DROP COLUMN proxy_checked_at;
ALTER TABLE reservations DROP COLUMN dependant_id;
DROP TABLE dependants;
