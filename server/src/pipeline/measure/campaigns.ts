import { randomBytes } from 'node:crypto';
import type { Sql, Tx } from '../../db/index.ts';

// Campaigns as stored (migration 0026): the campaign row, its flows, its UTM values, its cost entries.
// Money is numeric(16,2) in the database and a number here (cents survive a double at these sizes).

/** What a campaign is made of, as written. */
export interface CampaignRecord {
  name: string;
  /** The budget in `currency`; null: none set. */
  budget: number | null;
  /** ISO 4217 code of the budget and the cost entries. */
  currency: string;
  /** First day (YYYY-MM-DD) in `timezone`. */
  startDate: string;
  /** Last day, inclusive; null: open-ended. */
  endDate: string | null;
  timezone: string;
  /** Flows whose messages belong to the campaign (a flow belongs to one campaign at most). */
  flows: string[];
  /** UTM campaign values (`context.campaign.name`) that belong to it (each to one campaign at most). */
  utm: string[];
}

/** A stored campaign with its cost total. */
export interface CampaignRow extends CampaignRecord {
  id: string;
  /** Sum of every cost entry. */
  cost: number;
  createdAt: string;
  updatedAt: string;
  createdBy: string | null;
}

/** One cost entry. */
export interface CostEntry {
  id: string;
  amount: number;
  at: string;
  note: string | null;
  createdAt: string;
  createdBy: string | null;
}

interface Row {
  id: string;
  name: string;
  budget: string | null;
  currency: string;
  start_date: string;
  end_date: string | null;
  timezone: string;
  created_at: Date;
  updated_at: Date;
  created_by: string | null;
  flows: string[] | null;
  utm: string[] | null;
  cost: string | null;
}

const iso = (d: Date | string) => new Date(d).toISOString();

function campaignOf(r: Row): CampaignRow {
  return {
    id: r.id,
    name: r.name,
    budget: r.budget === null ? null : Number(r.budget),
    currency: r.currency,
    startDate: r.start_date,
    endDate: r.end_date,
    timezone: r.timezone,
    // Sorted here, by code unit: the database's collation differs between Postgres and PGlite.
    flows: (r.flows ?? []).sort(),
    utm: (r.utm ?? []).sort(),
    cost: Number(r.cost ?? 0),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    createdBy: r.created_by,
  };
}

// Dates as text (the driver would make a local-midnight Date of a `date`), lists and cost total per campaign.
function selectCampaigns(sql: Tx, where: ReturnType<Tx>) {
  return sql<Row[]>`
    SELECT c.id, c.name, c.budget::text AS budget, c.currency, c.start_date::text AS start_date,
      c.end_date::text AS end_date, c.timezone, c.created_at, c.updated_at, c.created_by,
      (SELECT array_agg(f.flow_id) FROM campaign_flows f WHERE f.campaign_id = c.id) AS flows,
      (SELECT array_agg(u.value) FROM campaign_utm u WHERE u.campaign_id = c.id) AS utm,
      (SELECT sum(k.amount)::text FROM campaign_costs k WHERE k.campaign_id = c.id) AS cost
    FROM campaigns c
    ${where}
    ORDER BY c.created_at, c.id`;
}

/**
 * Every campaign, oldest first.
 *
 * @example
 * const all = await listCampaigns(sql);
 */
export async function listCampaigns(sql: Tx): Promise<CampaignRow[]> {
  return (await selectCampaigns(sql, sql``)).map(campaignOf);
}

/**
 * One campaign, or undefined.
 *
 * @example
 * const c = await getCampaign(sql, 'cmp_x');
 */
export async function getCampaign(sql: Tx, id: string): Promise<CampaignRow | undefined> {
  const [row] = await selectCampaigns(sql, sql`WHERE c.id = ${id}`);
  return row ? campaignOf(row) : undefined;
}

/** Why a campaign cannot be written as asked (the API answers 400 or 409 with it). */
export type CampaignProblem =
  | { kind: 'unknown_flow'; index: number; flowId: string }
  | { kind: 'flow_taken'; index: number; flowId: string; campaignId: string }
  | { kind: 'utm_taken'; index: number; value: string; campaignId: string };

/**
 * What keeps `record` from being stored for campaign `id` (null for a new one): a flow that does not
 * exist, a flow or a UTM value that belongs to another campaign. Null when nothing does.
 *
 * @example
 * const problem = await campaignProblem(sql, null, record);
 */
export async function campaignProblem(
  sql: Tx,
  id: string | null,
  record: Pick<CampaignRecord, 'flows' | 'utm'>,
): Promise<CampaignProblem | null> {
  const [flows, owners, utm] = await Promise.all([
    sql<{ id: string }[]>`SELECT id FROM flows WHERE id = ANY(${record.flows}::text[])`,
    sql<{ flow_id: string; campaign_id: string }[]>`
      SELECT flow_id, campaign_id FROM campaign_flows WHERE flow_id = ANY(${record.flows}::text[])`,
    sql<{ value: string; campaign_id: string }[]>`
      SELECT value, campaign_id FROM campaign_utm WHERE value = ANY(${record.utm}::text[])`,
  ]);
  const known = new Set(flows.map((f) => f.id));
  for (const [index, flowId] of record.flows.entries()) {
    if (!known.has(flowId)) return { kind: 'unknown_flow', index, flowId };
    const other = owners.find((o) => o.flow_id === flowId && o.campaign_id !== id);
    if (other) return { kind: 'flow_taken', index, flowId, campaignId: other.campaign_id };
  }
  for (const [index, value] of record.utm.entries()) {
    const other = utm.find((u) => u.value === value && u.campaign_id !== id);
    if (other) return { kind: 'utm_taken', index, value, campaignId: other.campaign_id };
  }
  return null;
}

async function writeMembers(tx: Tx, id: string, record: CampaignRecord): Promise<void> {
  await tx`DELETE FROM campaign_flows WHERE campaign_id = ${id}`;
  await tx`DELETE FROM campaign_utm WHERE campaign_id = ${id}`;
  if (record.flows.length)
    await tx`
      INSERT INTO campaign_flows (flow_id, campaign_id)
      SELECT f, ${id} FROM unnest(${record.flows}::text[]) AS f`;
  if (record.utm.length)
    await tx`
      INSERT INTO campaign_utm (value, campaign_id)
      SELECT v, ${id} FROM unnest(${record.utm}::text[]) AS v`;
}

/**
 * Stores a new campaign (in the caller's transaction; check {@link campaignProblem} first, under the same
 * transaction: the primary keys of flows and UTM values refuse a second owner anyway). Returns its id.
 *
 * @example
 * const id = await sql.begin((tx) => insertCampaign(tx, record, 'usr_1'));
 */
export async function insertCampaign(tx: Tx, record: CampaignRecord, by: string | null): Promise<string> {
  const id = `cmp_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
  await tx`
    INSERT INTO campaigns (id, name, budget, currency, start_date, end_date, timezone, created_by)
    VALUES (${id}, ${record.name}, ${record.budget}, ${record.currency}, ${record.startDate}::date,
      ${record.endDate}::date, ${record.timezone}, ${by})`;
  await writeMembers(tx, id, record);
  return id;
}

/**
 * Replaces a campaign's fields, flows and UTM values. False when there is no such campaign.
 *
 * @example
 * await sql.begin((tx) => updateCampaign(tx, 'cmp_x', record));
 */
export async function updateCampaign(tx: Tx, id: string, record: CampaignRecord): Promise<boolean> {
  const done = await tx`
    UPDATE campaigns SET name = ${record.name}, budget = ${record.budget}, currency = ${record.currency},
      start_date = ${record.startDate}::date, end_date = ${record.endDate}::date, timezone = ${record.timezone},
      updated_at = now()
    WHERE id = ${id}`;
  if (!done.count) return false;
  await writeMembers(tx, id, record);
  return true;
}

/**
 * Deletes a campaign with its memberships and cost entries (its flows and their messages stay).
 *
 * @example
 * await deleteCampaign(sql, 'cmp_x');
 */
export async function deleteCampaign(sql: Tx, id: string): Promise<boolean> {
  return (await sql`DELETE FROM campaigns WHERE id = ${id}`).count > 0;
}

interface CostRow {
  id: string;
  amount: string;
  at: Date;
  note: string | null;
  created_at: Date;
  created_by: string | null;
}

const costOf = (r: CostRow): CostEntry => ({
  id: r.id,
  amount: Number(r.amount),
  at: iso(r.at),
  note: r.note,
  createdAt: iso(r.created_at),
  createdBy: r.created_by,
});

/**
 * Adds a cost entry to a campaign (which must exist).
 *
 * @example
 * await addCost(sql, 'cmp_x', { amount: 120.5, at: new Date(), note: 'ads, week 1' }, 'usr_1');
 */
export async function addCost(
  sql: Tx,
  campaignId: string,
  cost: { amount: number; at: Date; note: string | null },
  by: string | null,
): Promise<CostEntry> {
  const [row] = await sql<CostRow[]>`
    INSERT INTO campaign_costs (campaign_id, amount, at, note, created_by)
    VALUES (${campaignId}, ${cost.amount}, ${cost.at}, ${cost.note}, ${by})
    RETURNING id::text, amount::text, at, note, created_at, created_by`;
  return costOf(row!);
}

/**
 * A campaign's cost entries, by date.
 *
 * @example
 * const entries = await listCosts(sql, 'cmp_x');
 */
export async function listCosts(sql: Tx, campaignId: string): Promise<CostEntry[]> {
  const rows = await sql<CostRow[]>`
    SELECT id::text, amount::text, at, note, created_at, created_by FROM campaign_costs
    WHERE campaign_id = ${campaignId} ORDER BY at, id`;
  return rows.map(costOf);
}

/**
 * Deletes one cost entry of a campaign. False when there is none.
 *
 * @example
 * await deleteCost(sql, 'cmp_x', '12');
 */
export async function deleteCost(sql: Tx, campaignId: string, costId: string): Promise<boolean> {
  if (!/^\d{1,18}$/.test(costId)) return false;
  return (await sql`DELETE FROM campaign_costs WHERE campaign_id = ${campaignId} AND id = ${costId}`).count > 0;
}

/**
 * The cost entries' sum, within `[from, to)` when given.
 *
 * @example
 * const spent = await campaignCost(sql, 'cmp_x', { from, to });
 */
export async function campaignCost(sql: Sql | Tx, campaignId: string, range?: { from: Date; to: Date }) {
  const [row] = await sql<{ total: string | null; entries: number }[]>`
    SELECT sum(amount)::text AS total, count(*)::int AS entries FROM campaign_costs
    WHERE campaign_id = ${campaignId}
      ${range ? sql`AND at >= ${range.from} AND at < ${range.to}` : sql``}`;
  return { total: Number(row?.total ?? 0), entries: row?.entries ?? 0 };
}
