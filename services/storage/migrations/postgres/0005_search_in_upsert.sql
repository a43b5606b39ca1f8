-- The search vector is computed by the repository's upsert from the title and `search_text` (NEWSFLOW_SEARCH_SCOPE:
-- every word of the text by default, or the lead with the keywords and entity names), so the column stops being
-- generated. The rows already stored keep the vector they have, of their whole text, until rewritten; no table
-- rewrite is needed.
ALTER TABLE articles ALTER COLUMN search_vector DROP EXPRESSION;
-- Indexes nothing reads: listings sort and filter on sort_at, topic and place filters go through the lower(...)
-- indexes of 0003. Each one was one more entry to write per row.
DROP INDEX IF EXISTS articles_published_at;
DROP INDEX IF EXISTS article_topics_label;
DROP INDEX IF EXISTS article_places_code;
DROP INDEX IF EXISTS article_places_name;
-- lz4 rather than pglz for the large values, on the rows written from now on: compressing an article's text and
-- document with pglz cost about half as much as the rest of its insert; lz4 is several times faster, for values a
-- little larger. PostgreSQL 14+ built with lz4 (the official and Debian packages are).
-- A server built without lz4 keeps pglz: slower writes, nothing else changes.
DO $$
BEGIN
    ALTER TABLE articles ALTER COLUMN text SET COMPRESSION lz4, ALTER COLUMN doc SET COMPRESSION lz4;
    ALTER TABLE article_sources ALTER COLUMN html SET COMPRESSION lz4, ALTER COLUMN text SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available on this server: the large columns stay compressed with pglz';
END $$;
