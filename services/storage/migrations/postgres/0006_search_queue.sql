-- Search indexing after the commit (NEWSFLOW_SEARCH_INDEX=deferred, the default): the upsert queues the ids of the
-- articles it wrote here, in its own transaction, and every storage worker's index loop takes queued ids with SKIP
-- LOCKED, computes their search vectors and deletes them from the queue, in one transaction. Tokenizing every word
-- of a text costs PostgreSQL about 0.8 ms per 4 KB article, three times the rest of its write (BENCHMARKS.md), and a
-- batch is acked only after its upsert commits: so the stream no longer waits on it. An article deleted by
-- retention leaves the queue with it.
CREATE TABLE IF NOT EXISTS search_queue (
    article_id text PRIMARY KEY REFERENCES articles (id) ON DELETE CASCADE,
    queued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS search_queue_queued_at ON search_queue (queued_at);
