import { createHash } from 'node:crypto';
import {
  POINTS_BALANCE,
  type PointsEffect,
  type PointsEntry,
  type ProfileFacts,
  pointsBalance,
  type StepResult,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';

// The points ledger (migration 0022): `points` nodes write an entry with their step (the effect key is
// its source: a replayed step writes nothing twice); the balance is derived from the ledger at a moment
// (core's pointsBalance) and given to flows as `computed.points_balance`.

// Advisory lock class of a person's points (stage 4's people lock is 7, sends 8, the rollup 10): taken,
// sorted, before a transaction reads the balance its steps decide with (loadFacts, after the row locks
// of the runs it steps) and held to its commit. Two transactions stepping one person's runs at once —
// the timer's and an event's, which do not share the people lock, or two timers' — would otherwise both
// read 100 and both spend 80: the second now reads the balance after the first committed its debit.
const POINTS = 11;

/**
 * Locks people's points for the rest of the transaction (see POINTS), before their balances are read.
 *
 * @example
 * await lockPoints(tx, profileIds);
 * const balance = await balances(tx, profileIds, now);
 */
export async function lockPoints(tx: Tx, profileIds: readonly string[]): Promise<void> {
  const keys = [
    ...new Set(profileIds.map((id) => createHash('sha1').update(`points:${id}`).digest().readInt32BE(0))),
  ].sort((a, b) => a - b);
  if (keys.length) await tx`SELECT pg_advisory_xact_lock(${POINTS}::int, k) FROM unnest(${keys}::int[]) AS k`;
}

/**
 * Counts a step's points entries in the person's balance for the rest of the transaction: their next run
 * stepped in it (two flows started by one event) decides with what is left, not with the balance read
 * before either spent.
 *
 * @example
 * notePoints(profile, result);
 */
export function notePoints(profile: ProfileFacts, result: Pick<StepResult, 'effects'>): void {
  let delta = 0;
  for (const e of result.effects) if (e.type === 'points') delta += e.delta;
  if (!delta) return;
  const balance = profile.computed?.[POINTS_BALANCE];
  profile.computed = { ...profile.computed, [POINTS_BALANCE]: (typeof balance === 'number' ? balance : 0) + delta };
}

/** One step's points entry, with whose it is. */
export type PointsWrite = PointsEffect & { profileId: string };

/**
 * Writes the points entries of a transaction's steps, each once per source (its effect key).
 *
 * @example
 * await writePoints(tx, [{ ...effect, profileId }], now);
 */
export async function writePoints(tx: Tx, entries: readonly PointsWrite[], now: number): Promise<void> {
  if (!entries.length) return;
  await tx`
    INSERT INTO points_ledger (profile_id, delta, reason, source, at, expires_at)
    SELECT p, d, r, s, ${new Date(now)}, CASE WHEN x IS NULL THEN NULL ELSE to_timestamp(x / 1000.0) END
    FROM unnest(${entries.map((e) => e.profileId)}::uuid[], ${entries.map((e) => e.delta)}::bigint[],
      ${entries.map((e) => e.reason)}::text[], ${entries.map((e) => e.key)}::text[],
      ${entries.map((e) => e.expiresAt ?? null)}::float8[]) AS t (p, d, r, s, x)
    ON CONFLICT (source) DO NOTHING`;
}

/** A ledger row as the API shows it. */
export interface LedgerRow {
  id: string;
  delta: number;
  reason: string;
  source: string;
  at: Date;
  expiresAt: Date | null;
  actor: string | null;
}

/**
 * The ledgers of people, in the order written.
 *
 * @example
 * const rows = (await ledgers(tx, [profileId])).get(profileId) ?? [];
 */
export async function ledgers(tx: Tx, profileIds: readonly string[]): Promise<Map<string, LedgerRow[]>> {
  const out = new Map<string, LedgerRow[]>();
  if (!profileIds.length) return out;
  const rows = await tx<(LedgerRow & { p: string })[]>`
    SELECT profile_id::text AS p, id::text, delta::float8 AS delta, reason, source, at, expires_at AS "expiresAt", actor
    FROM points_ledger WHERE profile_id = ANY(${profileIds as string[]}::uuid[])
    ORDER BY profile_id, at, id`;
  for (const { p, ...row } of rows) out.set(p, [...(out.get(p) ?? []), row]);
  return out;
}

/**
 * The entries of a ledger as core's pointsBalance reads them.
 *
 * @example
 * pointsBalance(entriesOf(rows), now);
 */
export function entriesOf(rows: readonly LedgerRow[]): PointsEntry[] {
  return rows.map((r) => ({
    delta: Number(r.delta),
    at: new Date(r.at).getTime(),
    expiresAt: r.expiresAt ? new Date(r.expiresAt).getTime() : null,
  }));
}

/**
 * People's balances at `now` (0 without a ledger).
 *
 * @example
 * const balance = (await balances(tx, [profileId], Date.now())).get(profileId);
 */
export async function balances(tx: Tx, profileIds: readonly string[], now: number): Promise<Map<string, number>> {
  const all = await ledgers(tx, profileIds);
  return new Map(profileIds.map((id) => [id, pointsBalance(entriesOf(all.get(id) ?? []), now).balance]));
}

/** An adjustment through the API. */
export interface PointsAdjustment {
  delta: number;
  reason: string;
  /** `api:<the caller's key>`, or a new one: the same key twice writes once. */
  source: string;
  at: Date;
  expiresAt: Date | null;
  actor: string;
}

/**
 * Writes an adjustment to a person's ledger; false when its source was written before.
 *
 * @example
 * await adjustPoints(sql, profileId, { delta: 50, reason: 'goodwill', source: 'api:ticket-7', at: new Date(), expiresAt: null, actor: 'user:1' });
 */
export async function adjustPoints(tx: Tx, profileId: string, a: PointsAdjustment): Promise<boolean> {
  const rows = await tx`
    INSERT INTO points_ledger (profile_id, delta, reason, source, at, expires_at, actor)
    VALUES (${profileId}::uuid, ${a.delta}, ${a.reason}, ${a.source}, ${a.at}, ${a.expiresAt}, ${a.actor})
    ON CONFLICT (source) DO NOTHING RETURNING id`;
  return rows.length === 1;
}
