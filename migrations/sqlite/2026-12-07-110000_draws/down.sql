DROP TABLE draw_entries;
-- SQLite cannot drop a column that refers to another table: `draw_id` stays,
-- unused, when this is undone.
UPDATE pickup_windows SET draw_id = NULL;
DROP TABLE draw_windows;
DROP TABLE draws;
