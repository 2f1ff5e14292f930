-- At most one "someone tried to sign up with your national ID" mail per
-- person and day (in the service time zone): a sign-up with a registered
-- national ID inserts this row with ON CONFLICT DO NOTHING, and only the
-- insert that wrote it queues the mail. A person keeps only the latest row.
CREATE TABLE signup_notices (
    person_id BIGINT NOT NULL REFERENCES people (id),
    day DATE NOT NULL,
    PRIMARY KEY (person_id, day)
);
