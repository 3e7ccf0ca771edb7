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
  keys: number;
  oversizedKeys: number;
  candidates: number;
  startedAt: string;
  finishedAt: string;
}

type Stored = { profile_id: string; kind: 'identity' | 'trait'; key: string; value: unknown };

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
 * Rewrites the match keys of every live profile, one batch of {@link SCAN_BATCH} profiles per round
 * trip: opens their emails, phones and names, and stores the keyed hash of each matcher's values.
 */
async function writeKeys(tx: Tx, pii: Pii): Promise<{ profiles: number; keys: number }> {
  await tx`TRUNCATE duplicate_keys`;
  let after = '00000000-0000-0000-0000-000000000000';
  let profiles = 0;
  let keys = 0;
  for (;;) {
    const ids = await tx<{ id: string }[]>`
      SELECT id
      FROM profiles
      WHERE id > ${after} AND merged_into IS NULL AND erased_at IS NULL
      ORDER BY id
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
    const byProfile = new Map<string, Stored[]>();
    for (const r of rows) byProfile.set(r.profile_id, [...(byProfile.get(r.profile_id) ?? []), r]);
    const out = { kind: [] as string[], key: [] as string[], profile: [] as string[] };
    for (const [profile, own] of byProfile) {
      const input = inputOf(own, pii);
      for (const [kind, matcher] of Object.entries(MATCHERS)) {
        for (const value of matcher.values(input)) {
          out.kind.push(kind);
          out.key.push(blindIndex(pii.ring, `duplicate:${kind}`, value));
          out.profile.push(profile);
        }
      }
    }
    if (out.kind.length) {
      await tx`
        INSERT INTO duplicate_keys (kind, key, profile_id)
        SELECT * FROM unnest(${out.kind}::text[], ${out.key}::text[], ${out.profile}::uuid[])
        ON CONFLICT DO NOTHING`;
      keys += out.kind.length;
    }
  }
  return { profiles, keys };
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
    INSERT INTO duplicate_candidates (profile_a, profile_b, reasons, score, scan_id)
    SELECT a, b, reasons, score, ${scanId}
    FROM scored
    ON CONFLICT (profile_a, profile_b) DO UPDATE
    SET reasons = excluded.reasons, score = excluded.score, scan_id = excluded.scan_id
    WHERE duplicate_candidates.status = 'open'`;
  await tx`DELETE FROM duplicate_candidates WHERE status = 'open' AND scan_id <> ${scanId}`;
  return { candidates: written.count, oversizedKeys: oversized!.n };
}

/**
 * Finds likely duplicate profiles: rewrites every live profile's match keys and the open candidate
 * pairs, in one transaction (readers see the previous list until it commits). One scan at a time:
 * 409 while another runs.
 *
 * @example
 * const scan = await scanDuplicates(sql, pii, 'admin-key');
 */
export async function scanDuplicates(sql: Sql, pii: Pii, actor: string): Promise<ScanResult> {
  return sql.begin(async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(hashtextextended('cairn.duplicates.scan', 0)) AS ok`;
    if (!lock?.ok) throw new DomainError(409, 'scan_running', 'a duplicate scan is already running');
    const [scan] = await tx<{ id: string; started_at: Date }[]>`
      INSERT INTO duplicate_scans (actor) VALUES (${actor}) RETURNING id, started_at`;
    const read = await writeKeys(tx, pii);
    const found = await writeCandidates(tx, scan!.id);
    const [done] = await tx<{ finished_at: Date }[]>`
      UPDATE duplicate_scans
      SET finished_at = clock_timestamp(), profiles = ${read.profiles}, keys = ${read.keys},
        oversized_keys = ${found.oversizedKeys}, candidates = ${found.candidates}
      WHERE id = ${scan!.id}
      RETURNING finished_at`;
    return {
      id: String(scan!.id),
      ...read,
      ...found,
      startedAt: scan!.started_at.toISOString(),
      finishedAt: done!.finished_at.toISOString(),
    };
  }) as Promise<ScanResult>;
}
