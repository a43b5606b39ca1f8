-- Search and retention.
-- The sort key of every listing, COALESCE(published_at, stored_at), in one normal form (UTC, milliseconds),
-- since the stored ISO strings may carry any UTC offset.
ALTER TABLE articles ADD COLUMN sort_at TEXT
    GENERATED ALWAYS AS (strftime('%Y-%m-%dT%H:%M:%f', COALESCE(published_at, stored_at))) VIRTUAL;
CREATE INDEX IF NOT EXISTS articles_sort_at ON articles (sort_at, id);
-- Retention deletes by stored_at.
CREATE INDEX IF NOT EXISTS articles_stored_at ON articles (strftime('%Y-%m-%dT%H:%M:%f', stored_at));
CREATE INDEX IF NOT EXISTS articles_duplicate_of ON articles (duplicate_of);
-- Topic and place filters are case-insensitive.
CREATE INDEX IF NOT EXISTS article_topics_label_lower ON article_topics (lower(label));
CREATE INDEX IF NOT EXISTS article_topics_code_lower ON article_topics (lower(code));
CREATE INDEX IF NOT EXISTS article_places_name_lower ON article_places (lower(name));
CREATE INDEX IF NOT EXISTS article_places_code_lower ON article_places (lower(code));
-- Full text on title and text: an external-content FTS5 index over articles' rowids (the text is stored once,
-- in articles), Porter stemming so "shells" finds "shell", kept in step by triggers.
CREATE VIRTUAL TABLE articles_fts USING fts5(
    title, text, content = 'articles', content_rowid = 'rowid', tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
-- An external-content index forgets a row only when given the exact values it indexed: the old ones.
CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
END;
CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, text ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
    INSERT INTO articles_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
-- Index the rows written before this version.
INSERT INTO articles_fts (articles_fts) VALUES ('rebuild');
