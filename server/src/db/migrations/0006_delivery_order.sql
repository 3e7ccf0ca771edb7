-- Per-profile delivery order kept by the ledger (docs/design/delivery.md, "Order per profile").
-- `waiting`: a row of an ordered destination behind an earlier unfinished row (pending, retrying or
-- waiting) of the same destination and profile. It has no job; it becomes `pending`, with a job, once
-- the rows ahead of it are finished (delivered, dead or skipped).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
  CHECK (status IN ('pending', 'waiting', 'delivered', 'retrying', 'dead', 'skipped'));

-- Fan-out asks "has this profile unfinished rows here?", the sender and the sweep "which waiting rows
-- can go now?": both read only the unfinished part of the ledger, a small fraction of it.
CREATE INDEX deliveries_unfinished_idx ON deliveries (destination_id, profile_id, id)
  WHERE status IN ('pending', 'retrying', 'waiting');
