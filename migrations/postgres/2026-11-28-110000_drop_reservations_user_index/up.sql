-- A citizen's reservations are found by `user_id` through the unique index
-- on (user_id, request_id), whose first column it is; a citizen has a handful,
-- sorted by date in memory. The index on (user_id, created_at) only cost every
-- booking one more index page to write, in a random place of the index.
DROP INDEX reservations_user;
