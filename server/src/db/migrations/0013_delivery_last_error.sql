-- What the receiver last answered, kept on the ledger row: `reason` says why the row has its status
-- ("retry window of 3600 s exhausted"), which used to overwrite the receiver's own words. NULL until an
-- attempt fails; a later failure replaces them; a delivery or a replay keeps them as history.
--   last_status: the receiver's status code (HTTP status, SMTP reply code), NULL when there was no answer
--                (timeout, refused connection) or the plugin gave none.
--   last_error:  the failure message with an excerpt of the receiver's body, at most 1,024 characters,
--                with the destination's secret settings masked.
ALTER TABLE deliveries ADD COLUMN last_status integer;
ALTER TABLE deliveries ADD COLUMN last_error text;
