import type { z } from 'zod';
import { type Fragment, join, sql } from './sql.ts';

/** What a computed trait kind reads, for stage 3's dependency graph and its choice of definitions per batch. */
export interface KindDependencies {
  /** Event names read ('*': any event). */
  events: string[];
  /** Profile traits read (a change of one re-evaluates the trait). */
  traits?: string[];
  /** Computed traits read (evaluated first; their changes cascade). */
  computed?: string[];
  /** Whether the value can change with time alone (then `edges` finds whom). */
  timeBound: boolean;
}

/**
 * One computed trait kind beyond the aggregate ones: its schema, its SQL, its time edges and its words.
 * Kinds live in small tables (`PREFERENCE_KINDS`, `SCORE_KINDS`) instead of a switch.
 */
export interface ComputedKind<D> {
  schema: z.ZodType<D>;
  /** One row per profile in scope with a value: `id` (text), `v` (jsonb). */
  compile(def: D, nowMs: number, ids?: readonly string[]): Fragment;
  /** Profiles whose value may change as time moves from `sinceMs` to `nowMs` (null: none). */
  edges(def: D, sinceMs: number, nowMs: number): Fragment | null;
  describe(def: D): string;
  dependencies(def: D): KindDependencies;
}

export const DAY_MS = 86_400_000;
export const iso = (ms: number) => new Date(ms).toISOString();

/** `WITH scope AS (...)` and the body: the live profiles in scope (all, or among `ids`). */
export function inScope(body: Fragment, ids?: readonly string[]): Fragment {
  const scope = ids
    ? sql`SELECT p.id FROM profiles p WHERE p.id = ANY(${[...ids]}::uuid[]) AND p.merged_into IS NULL`
    : sql`SELECT p.id FROM profiles p WHERE p.merged_into IS NULL`;
  return sql`WITH scope AS MATERIALIZED (${scope})\n${body}`;
}

/** The events of a list of names, or every event a person sent (Cairn's own change events excluded). */
export function eventsNamed(names: readonly string[] | undefined): Fragment {
  return names?.length ? sql`e.event = ANY(${[...names]}::text[])` : sql`e.source_id <> 'cairn'`;
}

/**
 * Profiles with a matching event whose timestamp crossed one of the spans (an event `span` ms old
 * between the last sweep and now), or a future-dated event reaching now.
 */
export function spanEdges(where: Fragment, spans: readonly number[], sinceMs: number, nowMs: number): Fragment {
  const crossed = spans.map(
    (s) => sql` OR (e.timestamp > ${iso(sinceMs - s)}::timestamptz AND e.timestamp <= ${iso(nowMs - s)}::timestamptz)`,
  );
  return sql`SELECT DISTINCT e.profile_id AS id FROM events e
    WHERE ${where} AND e.profile_id IS NOT NULL
      AND ((e.timestamp > ${iso(sinceMs)}::timestamptz AND e.timestamp <= ${iso(nowMs)}::timestamptz AND e.timestamp > e.received_at)${join(crossed, sql``)})`;
}
