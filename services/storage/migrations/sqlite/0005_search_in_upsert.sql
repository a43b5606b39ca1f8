-- What full-text search indexes besides the title is `search_text` (NEWSFLOW_SEARCH_SCOPE: every word of the text
-- by default, or the lead with the keywords and entity names), no longer a column of `articles`, so the index stops
-- being an external-content one kept by triggers: it is a plain FTS5 table on the same rowids (it keeps its own copy
-- of what it indexes), filled by the repository's upsert, emptied of a row by the trigger below when retention
-- deletes the article.
DROP TRIGGER IF EXISTS articles_fts_insert;
DROP TRIGGER IF EXISTS articles_fts_update;
DROP TRIGGER IF EXISTS articles_fts_delete;
DROP TABLE IF EXISTS articles_fts;
CREATE VIRTUAL TABLE articles_fts USING fts5(title, text, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
    DELETE FROM articles_fts WHERE rowid = old.rowid;
END;
-- The rows already stored keep their whole text indexed until rewritten, as on PostgreSQL.
INSERT INTO articles_fts (rowid, title, text) SELECT rowid, title, text FROM articles;
-- Indexes nothing reads: listings sort and filter on sort_at, topic and place filters go through the lower(...)
-- indexes of 0003. Each one was one more entry to write per row.
DROP INDEX IF EXISTS articles_published_at;
DROP INDEX IF EXISTS article_topics_label;
DROP INDEX IF EXISTS article_places_code;
DROP INDEX IF EXISTS article_places_name;
