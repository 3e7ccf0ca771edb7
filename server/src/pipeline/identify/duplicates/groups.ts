import type { Sql } from '../../../db/index.ts';
import type { PiiView } from '../../../pii/view.ts';
import { type DuplicateProfile, profilesOf } from './queries.ts';

// Open pairs grouped into clusters (A~B and B~C: one group of three), as connected components with a
// union-find over the open pairs. Cheap: one indexed read of the open pairs (two uuids and a score
// each) and near-linear work in memory; scans cap blocks at 20 profiles, so groups stay small. Past
// MAX_PAIRS open pairs the answer says `truncated` (the pairs read are the best-scored).

/** Open pairs read at most to build groups. */
export const MAX_PAIRS = 100_000;

/** A group of profiles joined by open pairs. */
export interface DuplicateGroup {
  size: number;
  /** The best pair's score. */
  maxScore: number;
  profiles: DuplicateProfile[];
  pairs: { id: string; a: string; b: string; score: number }[];
}

/**
 * Groups of at least two live profiles joined by open pairs (scoring `minScore` or more), largest and
 * best first; `scanId` keeps only groups holding a pair that scan proposed first.
 *
 * @example
 * const { groups } = await duplicateGroups(sql, { minScore: 80, limit: 50 }, view);
 */
export async function duplicateGroups(
  sql: Sql,
  q: { minScore: number; limit: number; scanId?: string },
  view: PiiView,
): Promise<{ groups: DuplicateGroup[]; total: number; truncated: boolean }> {
  const rows = await sql<{ id: string; a: string; b: string; score: number; first: string | null }[]>`
    SELECT c.id::text, c.profile_a AS a, c.profile_b AS b, c.score, c.first_scan_id::text AS first
    FROM duplicate_candidates c
    WHERE c.status = 'open'
      AND c.score >= ${q.minScore}
      AND NOT EXISTS (
        SELECT 1 FROM profiles p
        WHERE p.id IN (c.profile_a, c.profile_b) AND (p.merged_into IS NOT NULL OR p.erased_at IS NOT NULL))
    ORDER BY c.score DESC, c.id DESC
    LIMIT ${MAX_PAIRS + 1}`;
  const truncated = rows.length > MAX_PAIRS;
  const pairs = rows.slice(0, MAX_PAIRS);
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    // Path compression: later finds are near constant.
    for (let y = x; parent.get(y) !== r; ) {
      const next = parent.get(y)!;
      parent.set(y, r);
      y = next;
    }
    return r;
  };
  for (const p of pairs) {
    if (!parent.has(p.a)) parent.set(p.a, p.a);
    if (!parent.has(p.b)) parent.set(p.b, p.b);
    const ra = find(p.a);
    const rb = find(p.b);
    // The smaller id becomes the root (ids are strings: no Math.min).
    if (ra < rb) parent.set(rb, ra);
    else if (rb < ra) parent.set(ra, rb);
  }
  const byRoot = new Map<string, { members: Set<string>; pairs: typeof pairs; fresh: boolean }>();
  for (const p of pairs) {
    const root = find(p.a);
    const g = byRoot.get(root) ?? { members: new Set(), pairs: [], fresh: false };
    g.members.add(p.a).add(p.b);
    g.pairs.push(p);
    if (q.scanId && p.first === q.scanId) g.fresh = true;
    byRoot.set(root, g);
  }
  const all = [...byRoot.values()]
    .filter((g) => !q.scanId || g.fresh)
    .map((g) => ({ ...g, maxScore: Math.max(...g.pairs.map((p) => p.score)) }))
    .sort((x, y) => y.members.size - x.members.size || y.maxScore - x.maxScore);
  const page = all.slice(0, q.limit);
  const people = await profilesOf(sql, [...new Set(page.flatMap((g) => [...g.members]))], view);
  return {
    total: all.length,
    truncated,
    groups: page.map((g) => ({
      size: g.members.size,
      maxScore: g.maxScore,
      profiles: [...g.members].sort().map((id) => people.get(id)!),
      pairs: g.pairs.map(({ first: _f, ...p }) => p),
    })),
  };
}
