-- On SQLite the booking is a statement per step inside its transaction, whose
-- rollback undoes a refused booking: there is nothing to create.
SELECT 1;
