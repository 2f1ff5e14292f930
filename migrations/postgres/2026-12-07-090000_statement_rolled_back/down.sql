DROP FUNCTION statement_rolled_back(TEXT, BIGINT[]);
