import {
  compareTraitEvents,
  emptyProfileState,
  foldEvent,
  type JsonObject,
  type ProfileState,
  type TraitEvent,
  type TraitOptions,
} from '@cairn/core';
import type { Sql, Tx } from '../db/index.ts';
import type { Pii } from '../pii/index.ts';
import { type BaselineRow, decodeBaseline, encodeBaseline, profileBaselineKey } from '../pipeline/identify/baseline.ts';
import type { EventPartition } from './retention-queries.ts';

// Before a partition of events is dropped, the fold of every identity with events in it is carried
// forward into fold_baselines (migration 0039), so a refold after the drop (a merge, an unmerge) starts
// from what the dropped events made instead of from nothing; and the consent choices those events recorded
// are labelled with their identity, which they then follow (docs/retention.md).

/** What recording baselines needs: the fold's options and PII protection (payloads are stored sealed). */
export interface BaselineContext {
  traits: TraitOptions;
  pii: Pick<Pii, 'openPayload' | 'sealValue' | 'openValue'>;
}

/** Profiles whose events one baseline transaction folds: a short transaction, a bounded batch in memory. */
export const BASELINE_BATCH = 1000;

const PARTITION_NAME = /^events_(legacy|p\d{6})$/;
const NO_PROFILE = '00000000-0000-0000-0000-000000000000';

/** What recording one partition's baselines did. */
export interface BaselineReport {
  profiles: number;
  identities: number;
  events: number;
}

/**
 * Records the fold baselines of one partition about to be dropped: for each identity with events in it,
 * its stored baseline (if any) folded forward with those events, in fold order, as of the partition's
 * end. One short transaction per {@link BASELINE_BATCH} profiles, walking the partition's profile index;
 * then one pass over the partition for identities a merge moved behind the walk meanwhile (their events
 * went to a profile already walked). Idempotent: an identity that already holds this partition is
 * skipped, so a run that crashed between here and the drop records nothing twice; and a refold meanwhile
 * skips the events a baseline already holds, so none is counted twice while the partition still exists.
 *
 * @example
 * await recordBaselines(sql, partition, { traits: {}, pii });
 */
export async function recordBaselines(
  sql: Sql,
  partition: EventPartition,
  ctx: BaselineContext,
): Promise<BaselineReport> {
  if (!PARTITION_NAME.test(partition.name)) throw new Error(`not an events partition: ${partition.name}`);
  // The partition's table, and every partition of events now: a baseline keeps the oids of those it
  // folded only while they exist.
  const [parts] = await sql<{ oid: string; all: string[] }[]>`
    SELECT ${partition.name}::regclass::oid::bigint::text AS oid,
      (SELECT array_agg(inhrelid::bigint::text) FROM pg_inherits WHERE inhparent = 'events'::regclass) AS all`;
  const batch: Batch = {
    name: partition.name,
    upper: partition.upperBound,
    oid: parts!.oid,
    existing: new Set(parts!.all),
    ctx,
    report: { profiles: 0, identities: 0, events: 0 },
  };
  let last = NO_PROFILE;
  for (;;) {
    const ids = await sql.begin(async (tx) => {
      const profiles = await tx<{ p: string }[]>`
        SELECT DISTINCT profile_id AS p
        FROM ${tx(batch.name)}
        WHERE profile_id > ${last}::uuid
        ORDER BY profile_id
        LIMIT ${BASELINE_BATCH}`;
      const ids = profiles.map((r) => r.p);
      if (ids.length) await foldProfiles(tx, ids, batch);
      return ids;
    });
    if (ids.length < BASELINE_BATCH) break;
    last = ids[ids.length - 1]!;
  }
  const [behind] = await sql<{ ids: string[] | null }[]>`
    SELECT array_agg(DISTINCT e.profile_id::text) AS ids
    FROM ${sql(batch.name)} e
    WHERE e.profile_id IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM fold_baselines b
        WHERE b.identity_key = coalesce(e.identity_key, 'profile:' || e.profile_id)
          AND ${batch.oid}::bigint = ANY(b.folded_parts))`;
  const stragglers = behind?.ids ?? [];
  for (let i = 0; i < stragglers.length; i += BASELINE_BATCH) {
    await sql.begin((tx) => foldProfiles(tx, stragglers.slice(i, i + BASELINE_BATCH), batch));
  }
  return batch.report;
}

/** One partition's recording, as its batches share it. */
interface Batch {
  name: string;
  upper: Date;
  /** The partition's table oid (as text). */
  oid: string;
  /** Oids of every partition of events now. */
  existing: ReadonlySet<string>;
  ctx: BaselineContext;
  report: BaselineReport;
}

/** Folds the partition's events of these profiles into their identities' baselines, in `tx`. */
async function foldProfiles(tx: Tx, ids: readonly string[], batch: Batch): Promise<void> {
  const { name, upper, oid, existing, ctx, report } = batch;
  const rows = await tx<
    {
      id: string;
      profile_id: string;
      identity_key: string | null;
      type: string;
      timestamp: Date;
      payload: JsonObject;
    }[]
  >`
      SELECT id::text, profile_id, identity_key, type, timestamp, payload
      FROM ${tx(name)}
      WHERE profile_id = ANY(${ids}::uuid[])`;
  const byKey = new Map<string, { profile: string; events: TraitEvent[] }>();
  for (const r of rows) {
    const key = r.identity_key ?? profileBaselineKey(r.profile_id);
    const group = byKey.get(key) ?? { profile: r.profile_id, events: [] };
    group.events.push({ id: r.id, ts: r.timestamp.getTime(), type: r.type, payload: r.payload });
    byKey.set(key, group);
  }
  const stored = await tx<BaselineRow[]>`
      SELECT identity_key, traits, groups, through_ts, through_id::text AS through_id, folded_parts::text[] AS folded_parts
      FROM fold_baselines
      WHERE identity_key = ANY(${[...byKey.keys()]}::text[])`;
  const storedOf = new Map(stored.map((s) => [s.identity_key, s]));
  const writes: Record<string, unknown>[] = [];
  for (const [key, group] of byKey) {
    const prior = storedOf.get(key);
    if (prior?.folded_parts.includes(oid)) continue; // recorded by a run that crashed before the drop
    const state: ProfileState = prior ? decodeBaseline(prior, ctx.pii) : emptyProfileState();
    // Opened here, one identity at a time: the fold compares clear values; they are sealed again below.
    const events = group.events
      .map((e) => ({ ...e, payload: ctx.pii.openPayload(e.payload) }))
      .sort(compareTraitEvents);
    for (const e of events) foldEvent(state, e, ctx.traits);
    const enc = encodeBaseline(state, ctx.pii);
    const folded = [...(prior?.folded_parts ?? []).filter((o) => existing.has(o)), oid];
    writes.push({
      k: key,
      p: group.profile,
      tr: enc.traits,
      g: enc.groups,
      tt: enc.throughTs,
      ti: enc.throughId,
      f: folded,
    });
    report.events += events.length;
  }
  if (writes.length) {
    // An identity erased meanwhile is not recorded: its row is locked (an erasure deleting it waits for
    // this commit, then deletes the baseline too) or already gone (skipped).
    const written = await tx<{ n: number }[]>`
        WITH x AS (
          SELECT * FROM json_to_recordset(${JSON.stringify(writes)}::text::json)
            AS x (k text, p uuid, tr json, g json, tt timestamptz, ti bigint, f bigint[])
        ), live AS (
          SELECT key FROM identities WHERE key IN (SELECT k FROM x) FOR KEY SHARE
        ), saved AS (
          INSERT INTO fold_baselines AS b (identity_key, profile_id, traits, groups, through_ts, through_id,
            folded_parts, folded_to)
          SELECT k, p, tr, g, tt, ti, f, ${upper}
          FROM x
          WHERE k IN (SELECT key FROM live) OR k LIKE 'profile:%'
          ORDER BY k
          ON CONFLICT (identity_key) DO UPDATE
          SET profile_id = excluded.profile_id, traits = excluded.traits, groups = excluded.groups,
            through_ts = excluded.through_ts, through_id = excluded.through_id,
            folded_parts = excluded.folded_parts, folded_to = excluded.folded_to,
            updated_at = now()
          RETURNING 1
        )
        SELECT count(*)::int AS n FROM saved`;
    report.identities += written[0]!.n;
  }
  // Their consent choices from these events keep the identity they were attached by (process.ts,
  // repointEvents, moves them with it).
  await tx`
      UPDATE consent_changes c SET identity_key = e.identity_key
      FROM ${tx(name)} e
      WHERE c.profile_id = ANY(${ids}::uuid[]) AND c.source = 'event' AND c.identity_key IS NULL
        AND e.id = c.event_id AND e.identity_key IS NOT NULL`;
  report.profiles += ids.length;
}
