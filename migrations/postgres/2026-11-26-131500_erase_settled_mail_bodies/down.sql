-- Erased subjects and bodies cannot be brought back, and nothing needs them.
SELECT 1;
