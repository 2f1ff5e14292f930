DROP INDEX import_previews_created;
DROP TABLE import_previews;
