-- A store's telephone number, optional: the 2020 data has none for many stores.
ALTER TABLE stores ADD COLUMN phone TEXT CHECK (phone IS NULL OR length(phone) BETWEEN 1 AND 30);
-- No index for the administrator's list: it is ordered by code, which the
-- unique index on code already serves (LIMIT and OFFSET included), and it is
-- searched with infix matches (`%q%`) that no B-tree index can serve; at
-- ~25,000 stores that scan takes a few milliseconds.
