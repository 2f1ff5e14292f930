DROP TABLE draw_entries;
ALTER TABLE pickup_windows DROP COLUMN draw_id;
DROP TABLE draw_windows;
DROP TABLE draws;
