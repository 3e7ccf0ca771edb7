-- The GIN index on identity_links.keys is read on every identity change; with fastupdate, searches
-- scan the pending list of recent insertions (a 80-key lookup took 19-20 ms with 4,000 pending
-- entries against 0.5 ms after cleaning it, measured by bench:identify). Insert into the index directly.
ALTER INDEX identity_links_keys_idx SET (fastupdate = off);
