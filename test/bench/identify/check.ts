import type postgres from 'postgres';
import type { Pii } from '../../../server/src/pii/index.ts';

// Compares what two databases hold after stage 2, ignoring what legitimately differs between them
// (profile uuids, event ids, arrival times, the client IP): profiles are named by their identities,
// events by their messageIds. Used to show that the bulk setup writes what the pipeline writes.

/**
 * Stage 2's state of a database, normalised: one sorted line per fact. Sealed trait values are
 * compared opened (each seal has a fresh IV); `pii` must hold the database's server secret.
 */
export async function stageTwoState(sql: postgres.Sql, pii: Pick<Pii, 'openValue'>): Promise<Map<string, string[]>> {
  const profiles = await sql<{ id: string; keys: string[]; merged_into: string | null }[]>`
    SELECT p.id, p.merged_into, coalesce(array_agg(i.key ORDER BY i.key) FILTER (WHERE i.key IS NOT NULL), '{}') AS keys
    FROM profiles p LEFT JOIN identities i ON i.profile_id = p.id GROUP BY p.id`;
  const name = new Map(profiles.map((p) => [p.id, p.keys.join(' ')]));
  const nameOf = (id: string | null) => (id === null ? 'null' : (name.get(id) ?? `missing profile ${id}`));
  const events = await sql<
    { id: string; message_id: string; profile_id: string | null; identity_key: string | null; done: boolean }[]
  >`
    SELECT id::text, message_id, profile_id, identity_key, processed_at IS NOT NULL AS done FROM events`;
  const messageOf = new Map(events.map((e) => [e.id, e.message_id]));
  const msg = (id: string | null) => (id === null ? 'null' : (messageOf.get(String(id)) ?? `missing event ${id}`));
  const links = await sql<{ keys: string[]; ts: Date; event_id: string; disabled_by: string | null }[]>`
    SELECT keys, ts, event_id::text, disabled_by::text FROM identity_links`;
  const traits = await sql<
    { profile_id: string; key: string; value: unknown; updated_at: Date; event_id: string; source: string }[]
  >`
    SELECT profile_id, key, value, updated_at, event_id::text, source FROM profile_traits`;
  const through = await sql<{ id: string; ts: Date | null; event_id: string | null; merged_into: string | null }[]>`
    SELECT id, traits_through_ts AS ts, traits_through_id::text AS event_id, merged_into FROM profiles`;
  const counts = await sql<{ what: string; n: number }[]>`
    SELECT 'merges' AS what, count(*)::int AS n FROM merges
    UNION ALL SELECT 'identity_refusals', count(*)::int FROM identity_refusals
    UNION ALL SELECT 'consent_changes', count(*)::int FROM consent_changes
    UNION ALL SELECT 'profile_accounts', count(*)::int FROM profile_accounts
    UNION ALL SELECT 'merged profiles', count(*)::int FROM profiles WHERE merged_into IS NOT NULL
    UNION ALL SELECT 'profiles', count(*)::int FROM profiles`;
  const sorted = (xs: string[]) => xs.sort();
  return new Map([
    [
      'profiles (by identities)',
      sorted(profiles.map((p) => `${p.keys.join(' ')} merged_into=${nameOf(p.merged_into)}`)),
    ],
    [
      'events',
      sorted(events.map((e) => `${e.message_id} -> ${nameOf(e.profile_id)} via ${e.identity_key} processed=${e.done}`)),
    ],
    [
      'identity_links',
      sorted(
        links.map(
          (l) => `${l.keys.join(' ')} ts=${l.ts.toISOString()} event=${msg(l.event_id)} disabled=${l.disabled_by}`,
        ),
      ),
    ],
    [
      'profile_traits',
      sorted(
        traits.map(
          (t) =>
            `${nameOf(t.profile_id)} ${t.key}=${JSON.stringify(pii.openValue(t.value))} at ${t.updated_at.toISOString()} event=${msg(t.event_id)} ${t.source}`,
        ),
      ),
    ],
    [
      'traits_through',
      sorted(through.map((p) => `${nameOf(p.id)} ${p.ts?.toISOString() ?? 'null'} event=${msg(p.event_id)}`)),
    ],
    ['counts', sorted(counts.map((c) => `${c.what}=${c.n}`))],
  ]);
}

/**
 * The differences between two normalised states, at most `max` lines per table.
 *
 * @example
 * const diffs = compareStates(await stageTwoState(a), await stageTwoState(b));
 */
export function compareStates(a: Map<string, string[]>, b: Map<string, string[]>, max = 5): string[] {
  const out: string[] = [];
  for (const [table, rowsA] of a) {
    const rowsB = b.get(table) ?? [];
    const setB = new Set(rowsB);
    const setA = new Set(rowsA);
    const onlyA = rowsA.filter((r) => !setB.has(r));
    const onlyB = rowsB.filter((r) => !setA.has(r));
    if (!onlyA.length && !onlyB.length) continue;
    out.push(`${table}: ${onlyA.length} rows only in the bulk state, ${onlyB.length} only in the pipeline's`);
    for (const r of onlyA.slice(0, max)) out.push(`  bulk only:     ${r}`);
    for (const r of onlyB.slice(0, max)) out.push(`  pipeline only: ${r}`);
  }
  return out;
}
