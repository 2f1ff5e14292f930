-- The booking runs as one statement outside an explicit transaction: its steps
-- (the quota, the window, the store-day, the reservation, its ledger row and
-- its mail) commit together or not at all. When a step after the quota's take
-- writes nothing, the statement calls this, and the error undoes the steps
-- that had passed; its detail says how many rows each step wrote, in order,
-- so that the application can tell which limit refused.
CREATE FUNCTION booking_rolled_back(
    taken BIGINT, win BIGINT, store_day BIGINT, booked BIGINT, ledger BIGINT, mail BIGINT
) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'booking rolled back'
        USING DETAIL = concat_ws(' ', taken, win, store_day, booked, ledger, mail);
END
$$;
