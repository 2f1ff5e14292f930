ALTER TABLE walk_in_sales DROP COLUMN proxy_person_id;
ALTER TABLE reservations DROP COLUMN proxy_checked_at;
ALTER TABLE reservations DROP COLUMN dependant_id;
DROP INDEX dependants_guardian;
DROP INDEX dependants_current_person;
DROP TABLE dependants;
