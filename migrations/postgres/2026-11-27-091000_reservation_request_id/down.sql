DROP INDEX reservations_user_request;
ALTER TABLE reservations DROP COLUMN request_id;
