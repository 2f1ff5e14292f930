DROP INDEX reservations_picked_up_at;
DROP INDEX reservations_created_at;
