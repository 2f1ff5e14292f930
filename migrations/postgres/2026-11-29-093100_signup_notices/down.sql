DROP TABLE signup_notices;
