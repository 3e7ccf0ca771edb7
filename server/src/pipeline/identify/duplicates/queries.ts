import type { Sql } from '../../../db/index.ts';
import { DomainError } from '../../../infra/errors.ts';
import type { PiiView } from '../../../pii/view.ts';
import { MATCHERS } from './match-keys.ts';

/** One profile of a candidate as a reviewer sees it (PII per the caller's view). */
export interface DuplicateProfile {
  id: string;
  name: string | null;
  emails: string[];
  phones: string[];
}

/** A candidate pair with its reasons and score. */
export interface DuplicateView {
  id: string;
  score: number;
  reasons: { kind: string; description: string }[];
  status: 'open' | 'merged' | 'dismissed';
  profiles: [DuplicateProfile, DuplicateProfile];
  createdAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  mergeId: string | null;
}

interface Row {
  id: string;
  profile_a: string;
  profile_b: string;
  reasons: string[];
  score: number;
  status: DuplicateView['status'];
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  merge_id: string | null;
}

/** The list's filters and keyset cursor (`<score>.<id>` of the previous page's last row). */
export interface DuplicateQuery {
  status: DuplicateView['status'];
  minScore: number;
  cursor?: { score: number; id: string };
  limit: number;
  /** Only pairs this scan proposed first (new since the scan before it). */
  scanId?: string;
}

/**
 * The reviewer's view of profiles (name, emails, phones; PII per the caller's view).
 *
 * @example
 * const byId = await profilesOf(sql, ['6f1c…'], view);
 */
export async function profilesOf(sql: Sql, ids: string[], view: PiiView): Promise<Map<string, DuplicateProfile>> {
  const out = new Map<string, DuplicateProfile>(ids.map((id) => [id, { id, name: null, emails: [], phones: [] }]));
  if (!ids.length) return out;
  const rows = await sql<{ profile_id: string; kind: string; key: string; value: unknown }[]>`
    SELECT profile_id, 'identity' AS kind, type AS key, to_jsonb(value) AS value
    FROM identities
    WHERE profile_id = ANY(${ids}::uuid[]) AND type IN ('email', 'phone')
    UNION ALL
    SELECT profile_id, 'trait', key, value
    FROM profile_traits
    WHERE profile_id = ANY(${ids}::uuid[]) AND key IN ('name', 'first_name', 'last_name', 'email', 'phone')`;
  const names = new Map<string, Record<string, string>>();
  for (const r of rows) {
    const p = out.get(r.profile_id)!;
    const shown =
      r.kind === 'identity' ? view.identity(r.key, r.value as string) : (view.value(r.key, r.value) as unknown);
    if (typeof shown !== 'string' && typeof shown !== 'number') continue;
    const text = String(shown);
    if (r.key === 'email' && !p.emails.includes(text)) p.emails.push(text);
    else if (r.key === 'phone' && !p.phones.includes(text)) p.phones.push(text);
    else names.set(r.profile_id, { ...names.get(r.profile_id), [r.key]: text });
  }
  for (const [id, n] of names) {
    out.get(id)!.name = n.name ?? ([n.first_name, n.last_name].filter(Boolean).join(' ') || null);
  }
  return out;
}

async function present(sql: Sql, rows: Row[], view: PiiView): Promise<DuplicateView[]> {
  const profiles = await profilesOf(sql, [...new Set(rows.flatMap((r) => [r.profile_a, r.profile_b]))], view);
  return rows.map((r) => ({
    id: String(r.id),
    score: r.score,
    reasons: r.reasons.map((kind) => ({ kind, description: MATCHERS[kind]?.describe ?? kind })),
    status: r.status,
    profiles: [profiles.get(r.profile_a)!, profiles.get(r.profile_b)!],
    createdAt: r.created_at.toISOString(),
    decidedAt: r.decided_at?.toISOString() ?? null,
    decidedBy: r.decided_by,
    mergeId: r.merge_id === null ? null : String(r.merge_id),
  }));
}

/**
 * A page of candidates, best score first. Open ones only while both profiles are live (neither
 * merged away nor erased since the scan).
 *
 * @example
 * const page = await listDuplicates(sql, { status: 'open', minScore: 80, limit: 50 }, view);
 */
export async function listDuplicates(sql: Sql, q: DuplicateQuery, view: PiiView): Promise<DuplicateView[]> {
  const live =
    q.status === 'open'
      ? sql`
      AND NOT EXISTS (
        SELECT 1 FROM profiles p
        WHERE p.id IN (c.profile_a, c.profile_b) AND (p.merged_into IS NOT NULL OR p.erased_at IS NOT NULL))`
      : sql``;
  const rows = await sql<Row[]>`
    SELECT id, profile_a, profile_b, reasons, score, status, created_at, decided_at, decided_by, merge_id
    FROM duplicate_candidates c
    WHERE status = ${q.status}
      AND score >= ${q.minScore}
      ${q.cursor ? sql`AND (score, id) < (${q.cursor.score}, ${q.cursor.id})` : sql``}
      ${q.scanId ? sql`AND first_scan_id = ${q.scanId}` : sql``}
      ${live}
    ORDER BY score DESC, id DESC
    LIMIT ${q.limit}`;
  return present(sql, rows, view);
}

/**
 * One candidate; 404 when there is none.
 *
 * @example
 * const candidate = await getDuplicate(sql, '12', view);
 */
export async function getDuplicate(sql: Sql, id: string, view: PiiView): Promise<DuplicateView> {
  const rows = await sql<Row[]>`
    SELECT id, profile_a, profile_b, reasons, score, status, created_at, decided_at, decided_by, merge_id
    FROM duplicate_candidates
    WHERE id = ${id}`;
  if (!rows.length) throw new DomainError(404, 'not_found', `no duplicate candidate ${id}`);
  return (await present(sql, rows, view))[0]!;
}

/**
 * Dismisses an open candidate: the pair is kept as dismissed and no later scan proposes it again.
 *
 * @example
 * await dismissDuplicate(sql, '12', 'admin-key');
 */
export async function dismissDuplicate(sql: Sql, id: string, actor: string): Promise<void> {
  const done = await sql`
    UPDATE duplicate_candidates
    SET status = 'dismissed', decided_at = now(), decided_by = ${actor}
    WHERE id = ${id} AND status = 'open'`;
  if (done.count) return;
  const [row] = await sql<{ status: string }[]>`SELECT status FROM duplicate_candidates WHERE id = ${id}`;
  if (!row) throw new DomainError(404, 'not_found', `no duplicate candidate ${id}`);
  throw new DomainError(409, 'already_decided', `duplicate candidate ${id} is ${row.status}`);
}

/** A finished scan as lists name it. */
export interface ScanSummary {
  id: string;
  finishedAt: string;
  profiles: number;
  trigger: 'api' | 'schedule';
  period: string | null;
  /** Open pairs it proposed first (still open now). */
  newCandidates: number;
}

/**
 * The last finished scan, or null before the first.
 *
 * @example
 * const scan = await latestScan(sql); // { id: '7', trigger: 'schedule', newCandidates: 3, ... }
 */
export async function latestScan(sql: Sql): Promise<ScanSummary | null> {
  const [row] = await sql<
    {
      id: string;
      finished_at: Date;
      profiles: number;
      trigger: 'api' | 'schedule';
      period: Date | null;
      fresh: number;
    }[]
  >`
    WITH last AS (
      SELECT id, finished_at, profiles, trigger, period
      FROM duplicate_scans
      WHERE finished_at IS NOT NULL
      ORDER BY id DESC
      LIMIT 1
    )
    SELECT l.id::text AS id, l.finished_at, l.profiles, l.trigger, l.period,
      (SELECT count(*)::int FROM duplicate_candidates c WHERE c.first_scan_id = l.id AND c.status = 'open') AS fresh
    FROM last l`;
  return row
    ? {
        id: row.id,
        finishedAt: row.finished_at.toISOString(),
        profiles: row.profiles,
        trigger: row.trigger,
        period: row.period?.toISOString() ?? null,
        newCandidates: row.fresh,
      }
    : null;
}
