CREATE TABLE IF NOT EXISTS articles (
    id            TEXT PRIMARY KEY,
    url           TEXT,
    source        TEXT,
    title         TEXT,
    text          TEXT NOT NULL,
    language      TEXT NOT NULL,
    published_at  TEXT,
    word_count    INTEGER NOT NULL,
    duplicate_of  TEXT,
    content_hash  TEXT NOT NULL,
    doc_hash      TEXT NOT NULL,
    doc           TEXT NOT NULL CHECK (json_valid(doc)),
    stored_at     TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_published_at ON articles (published_at);
CREATE INDEX IF NOT EXISTS articles_source ON articles (source);
CREATE INDEX IF NOT EXISTS articles_language ON articles (language);
CREATE TABLE IF NOT EXISTS article_topics (
    article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    label      TEXT NOT NULL,
    code       TEXT,
    score      REAL NOT NULL,
    PRIMARY KEY (article_id, label)
);
CREATE INDEX IF NOT EXISTS article_topics_label ON article_topics (label);
CREATE TABLE IF NOT EXISTS article_places (
    article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    code       TEXT,
    PRIMARY KEY (article_id, name, kind)
);
CREATE INDEX IF NOT EXISTS article_places_code ON article_places (code);
CREATE INDEX IF NOT EXISTS article_places_name ON article_places (name);
