ALTER TABLE stores DROP COLUMN search_text;
