-- A write made of several steps in one statement (a booking: the quota, the
-- window, the store-day, the reservation, its ledger row and its mail) runs
-- outside an explicit transaction, so its steps must commit together or not at
-- all. When a step after the first writes nothing, the statement calls this,
-- and the error undoes the steps that had passed. The message names the
-- statement, the detail lists the rows each step wrote, in order, so that the
-- application can tell which limit refused.
CREATE FUNCTION statement_rolled_back(statement TEXT, steps BIGINT[]) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rolled back', statement
        USING DETAIL = array_to_string(steps, ' ');
END
$$;
