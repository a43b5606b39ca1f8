-- Search and retention.
-- The sort key of every listing.
ALTER TABLE articles ADD COLUMN sort_at timestamptz GENERATED ALWAYS AS (COALESCE(published_at, stored_at)) STORED;
-- Full text on title (weight A) and text (weight B), English stemming so "shells" finds "shell". A tsvector
-- holds at most 1 MB, so only the start of a very long text is indexed (150,000 characters is a book chapter;
-- without the cap one pathological article would fail its whole batch).
ALTER TABLE articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, left(coalesce(title, ''), 2000)), 'A')
    || setweight(to_tsvector('english'::regconfig, left(coalesce(text, ''), 150000)), 'B')
) STORED;
CREATE INDEX IF NOT EXISTS articles_search_vector ON articles USING gin (search_vector);
CREATE INDEX IF NOT EXISTS articles_sort_at ON articles (sort_at DESC, id DESC);
-- Retention deletes by stored_at.
CREATE INDEX IF NOT EXISTS articles_stored_at ON articles (stored_at);
CREATE INDEX IF NOT EXISTS articles_duplicate_of ON articles (duplicate_of);
-- Topic and place filters are case-insensitive.
CREATE INDEX IF NOT EXISTS article_topics_label_lower ON article_topics (lower(label));
CREATE INDEX IF NOT EXISTS article_topics_code_lower ON article_topics (lower(code));
CREATE INDEX IF NOT EXISTS article_places_name_lower ON article_places (lower(name));
CREATE INDEX IF NOT EXISTS article_places_code_lower ON article_places (lower(code));
