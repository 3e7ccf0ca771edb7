import {
  ANY_CHANNEL,
  type ConflictReason,
  compileEventFilter,
  compileRule,
  DEFAULT_CONFLICT_WINDOW_MS,
  type FlowDefinition,
  type Fragment,
  type FrequencyCap,
  flowOverlap,
  ruleSql,
} from '@cairn/core';
import type { Sql, Tx } from '../../db/index.ts';
import { getGovernance } from './governance.ts';

// Conflict detection at submit (issue 18, item 5): the live flows that can message the same people on
// the same channel close in time as the flow submitted. core's flowOverlap decides from the two
// definitions; here the live flows are read, the people who would enter both today are counted, and the
// frequency caps and priorities say who would win a capped slot. Stored with the submission
// (flows.review_conflicts, migration 0023) so the reviewer reads what the submitter saw.

const DAY_MS = 86_400_000;
/** Event triggers count the people who sent the event in this many days. */
export const CONFLICT_EVENT_DAYS = 30;
/**
 * Candidate rows read per flow at most (event rows, memberships): the bound on a measurement's cost on
 * both databases (PGlite has no statement timeout).
 */
export const CONFLICT_MAX_ROWS = 1_000_000;
/**
 * People kept per flow at most: those with the lowest profile ids, on both sides, so that the overlap of
 * two capped sides is exact among the ids both kept (a lower bound), not the overlap of two random parts.
 */
export const CONFLICT_MAX_PEOPLE = 20_000;
/** On Postgres each count is also cancelled after this long (then not counted). */
export const CONFLICT_MEASURE_TIMEOUT_MS = 2_000;
/** Live flows measured per submit at most (the rest are listed unmeasured). */
export const MAX_MEASURED_CONFLICTS = 20;

/** People who would enter both flows today, counted. */
export interface MeasuredOverlap {
  /** People who would enter both; null when not countable or not counted (see `note`). */
  overlapCount: number | null;
  /** People who would enter the submitted flow. */
  submittedCount: number | null;
  /** People who would enter the live flow. */
  liveCount: number | null;
  /** A side had more than CONFLICT_MAX_PEOPLE people or CONFLICT_MAX_ROWS rows: the counts are lower bounds. */
  capped: boolean;
  /** How they were counted, or why they were not. */
  note: string;
}

/** Who takes a slot both flows want under a frequency cap. */
export interface SlotVerdict {
  /** The caps on the channels both flows send by (empty: no cap, no competition for slots). */
  caps: FrequencyCap[];
  /** `submitted` or `live` (the higher priority), `tie` (equal: the one due first). */
  winner: 'submitted' | 'live' | 'tie';
  text: string;
}

/** A live flow the submitted one may conflict with. */
export interface FlowConflict {
  flowId: string;
  name: string;
  version: number;
  priority: number;
  reasons: ConflictReason[];
  measured: MeasuredOverlap;
  slot: SlotVerdict;
}

/** The conflicts as found at one moment, with the window they used. */
export interface ConflictReport {
  checkedAt: string;
  windowHours: number;
  flows: FlowConflict[];
}

/** What the check needs besides the database. */
export interface ConflictCheck {
  now: Date;
  /** A destination's channel (email, sms…), null when unknown. */
  channelOf: (destination: string) => string | null | undefined;
  /** Sends (and schedule firings) this close are close in time (default 24 h). */
  windowMs?: number;
  /** Postgres counts under a statement timeout; PGlite has none (the candidate limit bounds both). */
  dbKind: 'postgres' | 'embedded';
  /** People kept per flow at most (default CONFLICT_MAX_PEOPLE). */
  maxPeople?: number;
}

/**
 * The people a flow's trigger would enter today, as a query: an event's senders in the last 30 days
 * matching its conditions, an audience's or tag's current members, the people who have the trait,
 * everyone for a schedule or calendar without audience. Undefined for an API trigger: its callers name
 * whom it enters.
 */
function candidatesOf(def: FlowDefinition, now: Date): Fragment | undefined {
  const t = def.trigger;
  const members = (audience: string) =>
    ruleSql`SELECT profile_id AS id FROM audience_memberships WHERE audience = ${audience} AND exited_at IS NULL`;
  let candidates: Fragment;
  switch (t.type) {
    case 'event': {
      // events_event_time_idx (event, timestamp) INCLUDE (profile_id); the conditions read the payload.
      const match = compileEventFilter({ event: t.event, ...(t.where ? { where: t.where } : {}) }, { now, alias: 'e' });
      candidates = ruleSql`
        SELECT e.profile_id AS id FROM events e
        WHERE e.event = ${t.event}
          AND e.timestamp >= ${new Date(now.getTime() - CONFLICT_EVENT_DAYS * DAY_MS)}
          AND e.profile_id IS NOT NULL
          AND ${match}`;
      break;
    }
    case 'audience_entered':
    case 'audience_exited':
      candidates = members(t.audience);
      break;
    case 'schedule':
    case 'calendar':
      candidates = t.audience
        ? members(t.audience)
        : ruleSql`SELECT id FROM profiles WHERE merged_into IS NULL AND erased_at IS NULL`;
      break;
    case 'tag_added':
    case 'tag_removed':
      candidates = ruleSql`SELECT profile_id AS id FROM tag_assignments WHERE tag = ${t.tag} AND removed_at IS NULL`;
      break;
    case 'trait_changed':
      candidates = t.computed
        ? ruleSql`SELECT profile_id AS id FROM computed_trait_values WHERE key = ${t.trait}`
        : ruleSql`SELECT profile_id AS id FROM profile_traits WHERE key = ${t.trait}`;
      break;
    case 'date_trait':
      candidates = ruleSql`SELECT profile_id AS id FROM profile_traits WHERE key = ${t.trait}`;
      break;
    case 'api':
      return undefined;
  }
  return candidates;
}

/** How each side's people are counted, in words. */
function basisOf(def: FlowDefinition): string {
  const t = def.trigger;
  const who =
    t.type === 'event'
      ? `sent "${t.event}" in the last ${CONFLICT_EVENT_DAYS} days`
      : t.type === 'audience_entered' || t.type === 'audience_exited'
        ? `are in ${t.audience} now`
        : (t.type === 'schedule' || t.type === 'calendar') && t.audience
          ? `are in ${t.audience} now`
          : t.type === 'tag_added' || t.type === 'tag_removed'
            ? `are tagged ${t.tag} now`
            : t.type === 'trait_changed' || t.type === 'date_trait'
              ? `have ${t.trait}`
              : 'are live profiles';
  return `people who ${who}${def.entry.rule ? ' and meet its entry rule' : ''}`;
}

/** The people a flow would enter today (its candidates its entry rule admits now). */
interface Entrants {
  ids: Set<string>;
  capped: boolean;
}

/**
 * Who would enter a flow today: the candidates (at most CONFLICT_MAX_ROWS rows read; the
 * CONFLICT_MAX_PEOPLE lowest profile ids kept), then those of them its entry rule admits (the rule
 * compiled over just those ids). In a read-only transaction, with a statement
 * timeout on Postgres; undefined for an API trigger, 'timeout' when cancelled.
 */
async function entrantsOf(
  sql: Sql,
  def: FlowDefinition,
  now: Date,
  kind: 'postgres' | 'embedded',
  max: number,
): Promise<Entrants | 'timeout' | undefined> {
  const candidates = candidatesOf(def, now);
  if (!candidates) return undefined;
  const read = async <T>(tx: Tx, f: Fragment) => {
    const { text, values } = f.render();
    // sql.unsafe: the text is a rendered rule Fragment ($n parameters, identifiers from the compiler).
    return (await tx.unsafe(text, values as never[])) as unknown as T[];
  };
  try {
    return await sql.begin('READ ONLY', async (tx) => {
      if (kind === 'postgres') await tx.unsafe(`SET LOCAL statement_timeout = ${CONFLICT_MEASURE_TIMEOUT_MS}`);
      // The first LIMIT bounds the rows read (an event sent twice is two rows); the second keeps the lowest
      // ids, the same part of the people on every side.
      const found = await read<{ id: string; rows: number }>(
        tx,
        ruleSql`
          WITH limited AS MATERIALIZED (${candidates} LIMIT ${CONFLICT_MAX_ROWS + 1}),
          people AS (SELECT DISTINCT id FROM limited)
          SELECT id, (SELECT count(*) FROM limited)::int AS rows FROM people ORDER BY id LIMIT ${max + 1}`,
      );
      const capped = found.length > max || (found[0]?.rows ?? 0) > CONFLICT_MAX_ROWS;
      const ids = found.slice(0, max).map((r) => r.id);
      if (!def.entry.rule || !ids.length) return { ids: new Set(ids), capped };
      const admitted = await read<{ id: string }>(tx, compileRule(def.entry.rule, { now }).members(ids));
      return { ids: new Set(admitted.map((r) => r.id)), capped };
    });
  } catch (err) {
    // 57014: query_canceled, by the statement timeout.
    if ((err as { code?: string }).code === '57014') return 'timeout';
    throw err;
  }
}

/** Counts both sides and their overlap, with how (or why not). */
function overlapOf(
  mine: Entrants | 'timeout' | undefined,
  theirs: Entrants | 'timeout' | undefined,
  basis: string,
  max: number,
): MeasuredOverlap {
  const none = { overlapCount: null, submittedCount: null, liveCount: null, capped: false };
  if (!mine || !theirs) return { ...none, note: 'an API trigger enters whom its callers name: not countable ahead' };
  if (mine === 'timeout' || theirs === 'timeout')
    return { ...none, note: `not counted: a count ran longer than ${CONFLICT_MEASURE_TIMEOUT_MS} ms (${basis})` };
  let both = 0;
  for (const id of mine.ids) if (theirs.ids.has(id)) both++;
  const capped = mine.capped || theirs.capped;
  return {
    overlapCount: both,
    submittedCount: mine.ids.size,
    liveCount: theirs.ids.size,
    capped,
    note: capped ? `lower bounds: counted among the ${max} lowest profile ids of each side (${basis})` : basis,
  };
}

/** The caps on the channels both flows send by, and which flow's priority takes a capped slot. */
function slotOf(
  reasons: ConflictReason[],
  caps: FrequencyCap[],
  mine: FlowDefinition,
  theirs: FlowDefinition,
): SlotVerdict {
  const close = reasons.find((r) => r.kind === 'close_in_time');
  const transactional = (def: FlowDefinition, node: string | undefined) =>
    def.nodes.some((n) => n.id === node && n.type === 'send' && n.transactional === true);
  const channels = new Set(
    reasons.flatMap((r) =>
      r.kind === 'same_channel'
        ? [r.channel]
        : r.kind === 'close_in_time'
          ? r.sends.flatMap((s) => (s.channel ? [s.channel] : []))
          : [],
    ),
  );
  // A transactional send is neither capped nor counted by caps: it competes for no slot.
  const exempt = transactional(mine, close?.sends[0].node) || transactional(theirs, close?.sends[1].node);
  const a = mine.priority ?? 0;
  const b = theirs.priority ?? 0;
  const applying = exempt ? [] : caps.filter((c) => c.channel === ANY_CHANNEL || channels.has(c.channel));
  const winner = a > b ? 'submitted' : a < b ? 'live' : 'tie';
  const capText = applying.length
    ? applying
        .map((c) => `${c.max} per ${c.windowHours} h on ${c.channel}${c.audience ? ` for ${c.audience}` : ''}`)
        .join(', ')
    : exempt
      ? 'a transactional send: exempt from frequency caps'
      : 'no frequency cap on the shared channels';
  const who =
    winner === 'tie'
      ? `equal priority (${a}): the message due first takes the slot`
      : `${winner === 'submitted' ? 'this flow' : 'the live flow'} wins a capped slot (priority ${Math.max(a, b)} over ${Math.min(a, b)})`;
  return { caps: applying, winner, text: `${capText}; ${who}` };
}

/**
 * The live flows (other than `flowId`) that can message the same people on the same channel close in time
 * as `def`: their reasons (core's flowOverlap), the people who would enter both today, and who would take
 * a capped slot. Most shared people first (then by name); at most {@link MAX_MEASURED_CONFLICTS} of them measured.
 *
 * @example
 * const report = await findConflicts(sql, flowId, def, { now: new Date(), channelOf, dbKind: 'postgres' });
 * report.flows[0]; // { flowId, name, priority, reasons: [...], measured: { overlapCount: 12, ... }, slot: { winner: 'live', ... } }
 */
export async function findConflicts(
  sql: Sql,
  flowId: string,
  def: FlowDefinition,
  check: ConflictCheck,
): Promise<ConflictReport> {
  const windowMs = check.windowMs ?? DEFAULT_CONFLICT_WINDOW_MS;
  const max = check.maxPeople ?? CONFLICT_MAX_PEOPLE;
  const live = await sql<{ id: string; name: string; version: number; definition: FlowDefinition }[]>`
    SELECT f.id, f.name, f.version, v.definition
    FROM flows f
    JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.version
    WHERE f.status = 'live'
      AND f.id <> ${flowId}
    ORDER BY f.id`;
  const { caps } = (await getGovernance(sql)).settings;
  const options = { channelOf: check.channelOf, windowMs, nowMs: check.now.getTime() };
  const flows: FlowConflict[] = [];
  // Flows on the same trigger and entry rule enter the same people: counted once.
  const counted = new Map<string, ReturnType<typeof entrantsOf>>();
  const entrants = (d: FlowDefinition) => {
    const key = JSON.stringify([d.trigger, d.entry.rule ?? null]);
    let found = counted.get(key);
    if (!found) {
      found = entrantsOf(sql, d, check.now, check.dbKind, max);
      counted.set(key, found);
    }
    return found;
  };
  for (const other of live) {
    const verdict = flowOverlap(def, other.definition, options);
    if (!verdict.overlap) continue;
    const priority = other.definition.priority ?? 0;
    let measured: MeasuredOverlap;
    if (flows.length < MAX_MEASURED_CONFLICTS) {
      const basis = `submitted: ${basisOf(def)}; live: ${basisOf(other.definition)}`;
      measured = overlapOf(await entrants(def), await entrants(other.definition), basis, max);
    } else {
      const note = `not counted: only the first ${MAX_MEASURED_CONFLICTS} conflicting flows are`;
      measured = { overlapCount: null, submittedCount: null, liveCount: null, capped: false, note };
    }
    flows.push({
      flowId: other.id,
      name: other.name,
      version: other.version,
      priority,
      reasons: verdict.reasons,
      measured,
      slot: slotOf(verdict.reasons, caps, def, other.definition),
    });
  }
  flows.sort(
    (x, y) => (y.measured.overlapCount ?? -1) - (x.measured.overlapCount ?? -1) || x.name.localeCompare(y.name, 'en'),
  );
  return { checkedAt: check.now.toISOString(), windowHours: windowMs / 3_600_000, flows };
}

/**
 * Keeps the conflicts found at submit with the submission (replaced at the next submit), if the working
 * copy is still the definition they were found for: false when it changed meanwhile.
 *
 * @example
 * await storeConflicts(tx, flowId, flow.definition, report);
 */
export async function storeConflicts(
  sql: Tx,
  flowId: string,
  definition: FlowDefinition,
  report: ConflictReport,
): Promise<boolean> {
  const rows = await sql`
    UPDATE flows SET review_conflicts = ${sql.json(report as never)}
    WHERE id = ${flowId}
      AND definition = ${sql.json(definition as never)}::jsonb
    RETURNING id`;
  return rows.length > 0;
}

/**
 * The conflicts stored with the flow's last submission, or undefined.
 *
 * @example
 * const seen = await storedConflicts(sql, flowId);
 */
export async function storedConflicts(sql: Tx, flowId: string): Promise<ConflictReport | undefined> {
  const [row] = await sql<{ report: ConflictReport | null }[]>`
    SELECT review_conflicts AS report FROM flows WHERE id = ${flowId}`;
  return row?.report ?? undefined;
}
