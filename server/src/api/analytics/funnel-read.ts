import {
  type FunnelAttempt,
  type FunnelEvent,
  type FunnelPass,
  type FunnelQuery,
  foldFunnel,
  funnelArraysQuery,
  funnelEventsQuery,
  funnelPackedQuery,
  unpackFunnelEvents,
} from '@cairn/core';
import type { PinnedReader } from '../../pipeline/measure/index.ts';
import { profileBounds } from './slices.ts';

/**
 * How the per-person pass reads its rows: `stream` (the events ordered by person, through a cursor,
 * folded person by person in JS), `arrays` (array_agg per person in SQL, one row per person) or
 * `packed` (the events of people grouped by their id's first byte, one text per group, 256 rows at
 * most; see funnelPackedQuery). Measured (docs/analytics.md, "Funnels"; docs/benchmarks.md): the
 * fastest is {@link FUNNEL_READ}; a breakdown (a value per entry event) reads `stream`.
 */
export type FunnelRead = 'stream' | 'arrays' | 'packed';
/** The measured fastest way (docs/benchmarks.md, "Analytics", "Funnels and retention at 10M events"). */
export const FUNNEL_READ: FunnelRead = 'packed';

type Row = { p: string; t: number; s: number; x: number; i: boolean; g: string | null };
type PersonRow = { p: string; t: number[]; s: number[]; x: number[]; i: boolean[]; g: (string | null)[] };

/**
 * Runs a funnel's one ordered pass: every person with an entry in the range, in profile-id order,
 * folded into their best attempt and handed to `visit` (profile id, attempt or null when every attempt
 * was spoiled by an exclusion, or when the person has matching events but no entry in the range). `visit` returning false stops the read (the cursor is closed).
 *
 * @example
 * await readFunnel(reader, query, pass, (profile, attempt) => { if (attempt) addAttempt(all, attempt); }, signal);
 */
export async function readFunnel(
  reader: PinnedReader,
  query: FunnelQuery,
  pass: FunnelPass,
  visit: (profileId: string, attempt: FunnelAttempt | null) => boolean | undefined,
  signal?: AbortSignal,
  how: FunnelRead = query.breakdown ? 'stream' : FUNNEL_READ,
): Promise<void> {
  if (how === 'packed' && !query.breakdown) {
    // Packs cut at the quantiles of profile ids (even for time-ordered ids); the first byte before any ANALYZE.
    const bounds = await profileBounds(reader, signal);
    for await (const batch of reader.stream<{ b: number; ev: string }>(funnelPackedQuery(query, bounds), signal, 4)) {
      for (const r of batch)
        for (const person of unpackFunnelEvents(r.ev))
          if (visit(person.profile, foldFunnel(pass, person.events)) === false) return;
    }
    return;
  }
  if (how === 'arrays') {
    for await (const batch of reader.stream<PersonRow>(funnelArraysQuery(query), signal, 500)) {
      for (const r of batch) {
        const events: FunnelEvent[] = r.t.map((t, k) => ({
          t,
          steps: r.s[k]!,
          exclusions: r.x[k]!,
          identify: r.i[k]!,
          group: r.g[k] ?? null,
        }));
        if (visit(r.p, foldFunnel(pass, events)) === false) return;
      }
    }
    return;
  }
  let person: string | null = null;
  let events: FunnelEvent[] = [];
  for await (const batch of reader.stream<Row>(funnelEventsQuery(query), signal, 5_000)) {
    for (const r of batch) {
      if (r.p !== person) {
        if (person !== null && visit(person, foldFunnel(pass, events)) === false) return;
        person = r.p;
        events = [];
      }
      events.push({ t: r.t, steps: r.s, exclusions: r.x, identify: r.i, group: r.g });
    }
  }
  if (person !== null) visit(person, foldFunnel(pass, events));
}
