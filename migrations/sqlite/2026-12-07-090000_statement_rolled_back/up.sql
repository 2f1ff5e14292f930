-- On SQLite a write of several steps is a statement per step inside its
-- transaction, whose rollback undoes a refusal: there is nothing to create.
SELECT 1;
