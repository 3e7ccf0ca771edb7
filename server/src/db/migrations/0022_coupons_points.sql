-- Coupons and points (issue 18 item 8). A coupon pool holds imported codes; a flow's `issue_coupon` node
-- takes one available code per run (the effect's key makes it once), an event of the pool's
-- `redeem_event` naming the code at `code_path` redeems it, and the automate timer expires codes past
-- their expiry. A points ledger per person: `points` nodes and API adjustments add or subtract, each
-- entry once per source; the balance is derived from it at a moment (credits that expire stop counting,
-- debits spend the credits that expire first), never stored.

CREATE TABLE coupon_pools (
  key text PRIMARY KEY,
  name text NOT NULL,
  -- A code's expiry: a number of days after it is issued, and/or a fixed moment (the sooner wins).
  expires_after_days integer CHECK (expires_after_days > 0),
  expires_at timestamptz,
  -- The event that redeems a code, and the dot path of the code in it (properties.coupon).
  redeem_event text,
  code_path text NOT NULL DEFAULT 'properties.coupon',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coupons (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pool text NOT NULL REFERENCES coupon_pools (key) ON DELETE CASCADE,
  code text NOT NULL,
  status text NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'issued', 'redeemed', 'expired')),
  issued_to uuid,
  -- The effect key of the step that issued it: a replayed step finds its code, never a second one.
  issued_key text UNIQUE,
  issued_at timestamptz,
  redeemed_at timestamptz,
  -- The event that redeemed it and whose it was.
  redeemed_event bigint,
  redeemed_by uuid,
  expires_at timestamptz,
  imported_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (pool, code)
);
-- Issuing: the next available code of a pool, in import order (FOR UPDATE SKIP LOCKED).
CREATE INDEX coupons_available_idx ON coupons (pool, id) WHERE status = 'available';
-- The expiry sweep: codes not yet redeemed that have an expiry.
CREATE INDEX coupons_expiry_idx ON coupons (expires_at) WHERE status IN ('available', 'issued') AND expires_at IS NOT NULL;
-- A person's coupons (erasure, their profile).
CREATE INDEX coupons_issued_to_idx ON coupons (issued_to) WHERE issued_to IS NOT NULL;

CREATE TABLE points_ledger (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  profile_id uuid NOT NULL,
  delta bigint NOT NULL CHECK (delta <> 0),
  reason text NOT NULL,
  -- Where it came from, once: a flow's effect key (flow:<run>:<node>:<iteration>) or `api:<key>`.
  source text NOT NULL UNIQUE,
  at timestamptz NOT NULL,
  -- A credit that stops counting then (what of it was not spent).
  expires_at timestamptz,
  -- Who made an adjustment through the API.
  actor text
);
CREATE INDEX points_ledger_profile_idx ON points_ledger (profile_id, at, id);
