-- The raw source of an article (NEWSFLOW_STORE_RAW): its HTML if it came as HTML, else its text, and its url.
-- Kept apart from `articles` so listings and search never read it; it goes with its article (retention included).
CREATE TABLE IF NOT EXISTS article_sources (
    article_id  TEXT PRIMARY KEY REFERENCES articles (id) ON DELETE CASCADE,
    url         TEXT,
    html        TEXT,
    text        TEXT,
    stored_at   TIMESTAMPTZ NOT NULL
);
