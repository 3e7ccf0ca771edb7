import {
  type FunnelAttempt,
  type FunnelEvent,
  type FunnelPass,
  type FunnelQuery,
  foldFunnel,
  funnelArraysQuery,
  funnelEventsQuery,
} from '@cairn/core';
import type { PinnedReader } from '../../pipeline/measure/index.ts';

/**
 * How the per-person pass reads its rows: `stream` (the events ordered by person, through a cursor,
 * folded person by person in JS) or `arrays` (array_agg per person in SQL, one row per person). Both
 * were measured (docs/analytics.md, "Funnels"); the faster one is {@link FUNNEL_READ}.
 */
export type FunnelRead = 'stream' | 'arrays';
/** The measured faster way (docs/analytics.md). */
export const FUNNEL_READ: FunnelRead = 'stream';

type Row = { p: string; t: number; s: number; x: number; i: boolean; g: string | null };
type PersonRow = { p: string; t: number[]; s: number[]; x: number[]; i: boolean[]; g: (string | null)[] };

/**
 * Runs a funnel's one ordered pass: every person with an entry in the range, in profile-id order,
 * folded into their best attempt and handed to `visit` (profile id, attempt or null when every attempt
 * was spoiled by an exclusion). `visit` returning false stops the read (the cursor is closed).
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
  how: FunnelRead = FUNNEL_READ,
): Promise<void> {
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
