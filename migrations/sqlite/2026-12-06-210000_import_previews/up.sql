-- An import file an administrator has seen the preview of, kept until they
-- confirm it: the confirmation names only the file's hash, and what is
-- applied is exactly these bytes (a browser cannot send a file again from a
-- hidden field). `seen` is a digest of the values the preview showed as
-- "old": at the confirmation, if the rows the file touches no longer hold
-- them, nothing is applied and a fresh preview is shown. A confirmation
-- deletes its row, so a replayed one finds nothing; rows older than an hour
-- are deleted whenever a new preview is stored.
CREATE TABLE import_previews (
    admin_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL CHECK (kind IN ('supply', 'stores')),
    file_hash TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content TEXT NOT NULL,
    seen TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (admin_id, kind, file_hash)
);
CREATE INDEX import_previews_created ON import_previews (created_at);
