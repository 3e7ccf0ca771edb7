-- Campaigns (stage 6): a name, a budget in a currency, dates, the flows whose messages belong to it (a flow
-- belongs to one campaign at most: its messages carry that campaign), the UTM campaign values
-- (`context.campaign.name` of events) that belong to it (each value to one campaign), and cost entries.
-- Results are read from the ledger, the journal and events (server/src/pipeline/measure/campaigns.ts).
CREATE TABLE campaigns (
  id text PRIMARY KEY,
  name text NOT NULL,
  budget numeric(16, 2) CHECK (budget >= 0),
  currency text NOT NULL,
  start_date date NOT NULL,
  end_date date,
  -- The zone the dates are days in.
  timezone text NOT NULL DEFAULT 'UTC',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  created_by text,
  CHECK (end_date IS NULL OR end_date >= start_date)
);

CREATE TABLE campaign_flows (
  flow_id text PRIMARY KEY,
  campaign_id text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE
);
CREATE INDEX campaign_flows_campaign_idx ON campaign_flows (campaign_id);

CREATE TABLE campaign_utm (
  value text PRIMARY KEY,
  campaign_id text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE
);
CREATE INDEX campaign_utm_campaign_idx ON campaign_utm (campaign_id);

CREATE TABLE campaign_costs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  campaign_id text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
  amount numeric(16, 2) NOT NULL CHECK (amount > 0),
  at timestamptz NOT NULL,
  note text,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text
);
CREATE INDEX campaign_costs_campaign_idx ON campaign_costs (campaign_id, at);
