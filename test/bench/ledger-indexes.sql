-- The delivery ledger's write cost with the indexes of migration 0006 and with those of 0012 (no foreign key to
-- destinations, no separate event index, the unique key reordered). Run on a scratch database:
--   createdb -h 127.0.0.1 -U postgres ledger_bench && psql -h 127.0.0.1 -U postgres -d ledger_bench -f test/bench/ledger-indexes.sql
-- Each variant: 400 inserts of 240 rows as fan-out writes them (with the per-row "unfinished rows ahead?" probe),
-- then 1,600 outcome updates of 60 rows; the times are Postgres's own (\timing), twice each, alternating.
\set ON_ERROR_STOP on
DROP TABLE IF EXISTS ledger_before, ledger_after, bench_destinations;
CREATE TABLE bench_destinations (id text PRIMARY KEY);
INSERT INTO bench_destinations VALUES ('d1'), ('d2'), ('d3');
CREATE TABLE ledger_before (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  destination_id text NOT NULL REFERENCES bench_destinations (id),
  event_id bigint NOT NULL, profile_id uuid, idempotency_key text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'waiting', 'delivered', 'retrying', 'dead', 'skipped')),
  reason text, attempts integer NOT NULL DEFAULT 0, first_attempt_at timestamptz, last_attempt_at timestamptz,
  delivered_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (destination_id, event_id));
CREATE INDEX ON ledger_before (destination_id, status, id DESC);
CREATE INDEX ON ledger_before (event_id);
CREATE INDEX ON ledger_before (destination_id, profile_id, id) WHERE status IN ('pending', 'retrying', 'waiting');
CREATE TABLE ledger_after (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  destination_id text NOT NULL,
  event_id bigint NOT NULL, profile_id uuid, idempotency_key text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'waiting', 'delivered', 'retrying', 'dead', 'skipped')),
  reason text, attempts integer NOT NULL DEFAULT 0, first_attempt_at timestamptz, last_attempt_at timestamptz,
  delivered_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (event_id, destination_id));
CREATE INDEX ON ledger_after (destination_id, status, id DESC);
CREATE INDEX ON ledger_after (destination_id, profile_id, id) WHERE status IN ('pending', 'retrying', 'waiting');

CREATE OR REPLACE PROCEDURE ledger_round(tbl text) LANGUAGE plpgsql AS $$
DECLARE i int;
BEGIN
  EXECUTE format('TRUNCATE %I RESTART IDENTITY', tbl);
  FOR i IN 0..399 LOOP
    EXECUTE format($q$
      INSERT INTO %1$I (destination_id, event_id, profile_id, idempotency_key, status, reason)
      SELECT 'd' || (1 + g %% 3), $1 * 80 + g / 3, md5((($1 * 80 + g / 3) %% 3000)::text)::uuid,
        'msg' || ($1 * 80 + g / 3) || ':d' || (1 + g %% 3),
        CASE WHEN EXISTS (SELECT 1 FROM %1$I b WHERE b.destination_id = 'd' || (1 + g %% 3)
            AND b.profile_id = md5((($1 * 80 + g / 3) %% 3000)::text)::uuid
            AND b.status IN ('pending', 'retrying', 'waiting') OFFSET 0)
          THEN 'waiting' ELSE 'pending' END, NULL
      FROM generate_series(0, 239) g ON CONFLICT DO NOTHING$q$, tbl) USING i;
  END LOOP;
END $$;
CREATE OR REPLACE PROCEDURE ledger_outcomes(tbl text) LANGUAGE plpgsql AS $$
DECLARE i int;
BEGIN
  FOR i IN 0..1599 LOOP
    EXECUTE format($q$
      UPDATE %I SET status = 'delivered', attempts = attempts + 1, first_attempt_at = now(), last_attempt_at = now(),
        delivered_at = now(), updated_at = now()
      WHERE id > $1 * 60 AND id <= ($1 + 1) * 60$q$, tbl) USING i;
  END LOOP;
END $$;

\timing on
\echo 'before (0006): inserts, then outcome updates'
CALL ledger_round('ledger_before');
CALL ledger_outcomes('ledger_before');
\echo 'after (0012): inserts, then outcome updates'
CALL ledger_round('ledger_after');
CALL ledger_outcomes('ledger_after');
\echo 'before (0006), again'
CALL ledger_round('ledger_before');
CALL ledger_outcomes('ledger_before');
\echo 'after (0012), again'
CALL ledger_round('ledger_after');
CALL ledger_outcomes('ledger_after');
\timing off
DROP TABLE ledger_before, ledger_after, bench_destinations;
DROP PROCEDURE ledger_round, ledger_outcomes;
