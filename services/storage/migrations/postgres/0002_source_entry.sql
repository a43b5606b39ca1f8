-- The classified stream entry an article was last stored from: a redelivery of the same entry is announced
-- again (its first announcement may never have gone out), a new entry with unchanged content is not.
ALTER TABLE articles ADD COLUMN source_entry_id TEXT;
