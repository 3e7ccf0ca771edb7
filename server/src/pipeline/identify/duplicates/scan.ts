import { createHash } from 'node:crypto';
import type { Sql, Tx } from '../../../db/index.ts';
import { DomainError } from '../../../infra/errors.ts';
import { blindIndex } from '../../../pii/crypto.ts';
import type { Pii } from '../../../pii/index.ts';
import { MATCHERS, type MatchInput } from './match-keys.ts';

/** Profiles read (and their values opened) per round trip. */
export const SCAN_BATCH = 5000;
/**
 * Profiles sharing one key beyond which the key is skipped: no person has this many duplicates, a
 * value this common is a shop's own phone or a placeholder address, and blocking on it would make
 * its pairs grow with the square of its size.
 */
export const MAX_BLOCK = 20;

// Traits the matchers read (besides the email and phone identities).
const NAME_TRAITS = ['name', 'first_name', 'last_name', 'firstName', 'lastName'] as const;
const TRAIT_KEYS = ['email', 'phone', ...NAME_TRAITS];

/** What one scan read and found. */
export interface ScanResult {
  id: string;
  profiles: number;
  /** Profiles whose values changed since the last scan (or all, in a full scan): opened and re-keyed. */
  changed: number;
  keys: number;
  oversizedKeys: number;
  candidates: number;
  /** Open pairs this scan proposed for the first time (`GET /api/duplicates?scan=<id>` lists them). */
  newCandidates: number;
  /** `api` (POST /api/duplicates/scan) or `schedule`. */
  trigger: 'api' | 'schedule';
  /** The schedule's period it scanned for, or null. */
  period: string | null;
  startedAt: string;
  finishedAt: string;
}

type Stored = { profile_id: string; kind: 'identity' | 'trait'; key: string; value: unknown };

/** Part of every fingerprint: changing how keys are made (a matcher, a normaliser) re-keys everyone. */
export const MATCH_VERSION = '1';

// What a profile's keys were made from: its stored (sealed) values, in a stable order.
function fingerprintOf(rows: readonly Stored[]): string {
  const parts = rows.map((r) => `${r.kind}:${r.key}=${JSON.stringify(r.value)}`).sort();
  return createHash('sha1').update(MATCH_VERSION).update('\n').update(parts.join('\n')).digest('base64url');
}

const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : null);

function inputOf(rows: { kind: 'identity' | 'trait'; key: string; value: unknown }[], pii: Pii): MatchInput {
  const emails: string[] = [];
  const phones: string[] = [];
  const traits = new Map<string, string>();
  for (const r of rows) {
    const v = text(pii.openValue(r.value));
    if (v === null) continue;
    if (r.key === 'email') emails.push(v);
    else if (r.key === 'phone') phones.push(v);
    else traits.set(r.key, v);
  }
  const names = [
    traits.get('name'),
    [traits.get('first_name'), traits.get('last_name')].filter(Boolean).join(' '),
    [traits.get('firstName'), traits.get('lastName')].filter(Boolean).join(' '),
  ].filter((n): n is string => !!n);
  return { emails, phones, names };
}

/**
 * Brings the match keys of every live profile up to date, one batch of {@link SCAN_BATCH} profiles per
 * round trip. A profile whose stored values are the ones the last scan saw (same fingerprint: a hash of
 * the sealed values and of {@link MATCH_VERSION}) keeps its keys; the others are opened and re-keyed.
 * `full` re-keys every profile.
 */
async function writeKeys(tx: Tx, pii: Pii, full: boolean): Promise<{ profiles: number; changed: number }> {
  if (full) await tx`TRUNCATE duplicate_keys, duplicate_sources`;
  let after = '00000000-0000-0000-0000-000000000000';
  let profiles = 0;
  let changed = 0;
  for (;;) {
    const ids = await tx<{ id: string; fingerprint: string | null }[]>`
      SELECT p.id, s.fingerprint
      FROM profiles p
      LEFT JOIN duplicate_sources s ON s.profile_id = p.id
      WHERE p.id > ${after} AND p.merged_into IS NULL AND p.erased_at IS NULL
      ORDER BY p.id
      LIMIT ${SCAN_BATCH}`;
    if (!ids.length) break;
    after = ids.at(-1)!.id;
    profiles += ids.length;
    const list = ids.map((r) => r.id);
    // Email and phone identities (sealed values) and the traits matchers read, of this batch.
    const rows: Stored[] = await tx<Stored[]>`
      SELECT profile_id, 'identity' AS kind, type AS key, to_jsonb(value) AS value
      FROM identities
      WHERE profile_id = ANY(${list}::uuid[]) AND type IN ('email', 'phone')
      UNION ALL
      SELECT profile_id, 'trait', key, value
      FROM profile_traits
      WHERE profile_id = ANY(${list}::uuid[]) AND key = ANY(${TRAIT_KEYS}::text[])`;
    const byProfile = new Map<string, Stored[]>(list.map((id) => [id, []]));
    for (const r of rows) byProfile.get(r.profile_id)!.push(r);
    const stale = ids.filter((r) => r.fingerprint !== fingerprintOf(byProfile.get(r.id)!));
    if (!stale.length) continue;
    changed += stale.length;
    const out = { kind: [] as string[], key: [] as string[], profile: [] as string[] };
    for (const { id } of stale) {
      const input = inputOf(byProfile.get(id)!, pii);
      for (const [kind, matcher] of Object.entries(MATCHERS)) {
        for (const value of matcher.values(input)) {
          out.kind.push(kind);
          out.key.push(blindIndex(pii.ring, `duplicate:${kind}`, value));
          out.profile.push(id);
        }
      }
    }
    const staleIds = stale.map((r) => r.id);
    await tx`DELETE FROM duplicate_keys WHERE profile_id = ANY(${staleIds}::uuid[])`;
    if (out.kind.length) {
      await tx`
        INSERT INTO duplicate_keys (kind, key, profile_id)
        SELECT * FROM unnest(${out.kind}::text[], ${out.key}::text[], ${out.profile}::uuid[])
        ON CONFLICT DO NOTHING`;
    }
    await tx`
      INSERT INTO duplicate_sources (profile_id, fingerprint)
      SELECT * FROM unnest(${staleIds}::uuid[], ${stale.map((r) => fingerprintOf(byProfile.get(r.id)!))}::text[])
      ON CONFLICT (profile_id) DO UPDATE SET fingerprint = excluded.fingerprint`;
  }
  // Profiles merged away or erased since: their keys no longer stand for anyone.
  await tx`
    DELETE FROM duplicate_keys k
    USING profiles p
    WHERE p.id = k.profile_id AND (p.merged_into IS NOT NULL OR p.erased_at IS NOT NULL)`;
  await tx`
    DELETE FROM duplicate_sources s
    USING profiles p
    WHERE p.id = s.profile_id AND (p.merged_into IS NOT NULL OR p.erased_at IS NOT NULL)`;
  return { profiles, changed };
}

/**
 * Pairs the profiles sharing a key (blocking: only rows with equal (kind, key) are compared, never
 * all pairs), scores each pair by the kinds it shares, and upserts them as open candidates. Decided
 * pairs keep their status; open ones no later evidence supports are removed.
 */
async function writeCandidates(tx: Tx, scanId: string): Promise<{ candidates: number; oversizedKeys: number }> {
  const kinds = Object.keys(MATCHERS);
  const weights = kinds.map((k) => MATCHERS[k]!.weight);
  const [oversized] = await tx<{ n: number }[]>`
    SELECT count(*)::int AS n
    FROM (
      SELECT 1 FROM duplicate_keys GROUP BY kind, key HAVING count(*) > ${MAX_BLOCK}
    ) big`;
  const written = await tx`
    WITH blocks AS (
      SELECT kind, key
      FROM duplicate_keys
      GROUP BY kind, key
      HAVING count(*) BETWEEN 2 AND ${MAX_BLOCK}
    ),
    pairs AS (
      SELECT DISTINCT a.profile_id AS a, b.profile_id AS b, a.kind
      FROM blocks k
      JOIN duplicate_keys a ON a.kind = k.kind AND a.key = k.key
      JOIN duplicate_keys b ON b.kind = k.kind AND b.key = k.key AND a.profile_id < b.profile_id
    ),
    weights AS (
      SELECT * FROM unnest(${kinds}::text[], ${weights}::float8[]) AS w (kind, weight)
    ),
    scored AS (
      -- 1 - Π(1 - w) as 1 - exp(Σ ln(1 - w)).
      SELECT p.a, p.b, array_agg(p.kind ORDER BY p.kind) AS reasons,
        round(100 * (1 - exp(sum(ln(1 - w.weight)))))::smallint AS score
      FROM pairs p
      JOIN weights w ON w.kind = p.kind
      GROUP BY p.a, p.b
    )
    INSERT INTO duplicate_candidates (profile_a, profile_b, reasons, score, scan_id, first_scan_id)
    SELECT a, b, reasons, score, ${scanId}, ${scanId}
    FROM scored
    ON CONFLICT (profile_a, profile_b) DO UPDATE
    SET reasons = excluded.reasons, score = excluded.score, scan_id = excluded.scan_id
    WHERE duplicate_candidates.status = 'open'`;
  await tx`DELETE FROM duplicate_candidates WHERE status = 'open' AND scan_id <> ${scanId}`;
  return { candidates: written.count, oversizedKeys: oversized!.n };
}

/**
 * Finds likely duplicate profiles: brings every live profile's match keys up to date (re-keying only
 * those whose values changed, or all when `full`) and rewrites the open candidate pairs, in one
 * transaction (readers see the previous list until it commits). One scan at a time: 409 while
 * another runs.
 *
 * @example
 * const scan = await scanDuplicates(sql, pii, 'admin-key');
 */
export async function scanDuplicates(
  sql: Sql,
  pii: Pii,
  actor: string,
  full = false,
  /** The schedule's period (schedule.ts): the scan is recorded as its, and skipped when it has one already. */
  period?: string,
): Promise<ScanResult | null> {
  return sql.begin(async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(hashtextextended('cairn.duplicates.scan', 0)) AS ok`;
    if (!lock?.ok) throw new DomainError(409, 'scan_running', 'a duplicate scan is already running');
    if (period) {
      // A retried job of a period whose scan committed (the process died before the job completed).
      const [claim] = await tx<{ scan_id: string | null }[]>`
        SELECT scan_id FROM duplicate_schedule_runs WHERE period = ${period} FOR UPDATE`;
      if (!claim || claim.scan_id !== null) return null;
    }
    const trigger = period ? 'schedule' : 'api';
    const [scan] = await tx<{ id: string; started_at: Date }[]>`
      INSERT INTO duplicate_scans (actor, trigger, period)
      VALUES (${actor}, ${trigger}, ${period ?? null})
      RETURNING id, started_at`;
    if (period) await tx`UPDATE duplicate_schedule_runs SET scan_id = ${scan!.id} WHERE period = ${period}`;
    const read = await writeKeys(tx, pii, full);
    const [stored] = await tx<{ n: number }[]>`SELECT count(*)::int AS n FROM duplicate_keys`;
    const found = await writeCandidates(tx, scan!.id);
    const [fresh] = await tx<{ n: number }[]>`
      SELECT count(*)::int AS n FROM duplicate_candidates WHERE first_scan_id = ${scan!.id} AND status = 'open'`;
    const [done] = await tx<{ finished_at: Date }[]>`
      UPDATE duplicate_scans
      SET finished_at = clock_timestamp(), profiles = ${read.profiles}, keys = ${stored!.n},
        oversized_keys = ${found.oversizedKeys}, candidates = ${found.candidates}
      WHERE id = ${scan!.id}
      RETURNING finished_at`;
    return {
      id: String(scan!.id),
      ...read,
      keys: stored!.n,
      ...found,
      newCandidates: fresh!.n,
      trigger,
      period: period ?? null,
      startedAt: scan!.started_at.toISOString(),
      finishedAt: done!.finished_at.toISOString(),
    };
  }) as Promise<ScanResult | null>;
}
