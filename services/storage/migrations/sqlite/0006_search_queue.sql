-- Nothing to change on SQLite: its full-text index is always written by the upsert (one writer at a time, and the
-- embedded default is small). PostgreSQL's 0006 adds the queue of deferred search indexing; this file keeps the two
-- backends at the same schema version.
SELECT 1;
