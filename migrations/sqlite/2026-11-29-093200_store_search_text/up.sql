-- What the public store search (/stores?q=…) matches words against: the
-- store's name, address and region, lower-cased, one to a line (a word never
-- holds a line break, so it never matches across two fields). One LIKE per
-- word on one column, rather than lower() and LIKE on three, keeps a search
-- cheap at national scale. The application writes it with the store's text;
-- here it is filled for the stores there are.
ALTER TABLE stores ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE stores SET search_text = lower(name || char(10) || addr || char(10) || region);
