import { compareStrings } from '@cairn/core';
import type { Sql, Tx } from '../../../db/index.ts';
import { DomainError } from '../../../infra/errors.ts';
import type { HandOff } from '../../../jobs/handoff.ts';
import { liveProfileId, withProfileLocked } from '../admin.ts';
import { applyPartition, assignmentOf, linkHash, type StoredLink } from '../component.ts';
import { NeedsMoreLocks } from '../locks.ts';
import { settleProfiles } from '../process.ts';
import type { IdentifyContext } from '../types.ts';

/** What merging a candidate did. */
export interface CandidateMerge {
  survivor: string;
  merged: string;
  /** The merge log entry: `POST /api/profiles/{survivor}/unmerge` with it undoes the merge. */
  mergeId: string;
}

interface Candidate {
  id: string;
  profile_a: string;
  profile_b: string;
  reasons: string[];
  status: string;
}

async function openCandidate(sql: Tx, id: string, lock: boolean): Promise<Candidate> {
  const [row] = lock
    ? await sql<Candidate[]>`
      SELECT id, profile_a, profile_b, reasons, status FROM duplicate_candidates WHERE id = ${id} FOR UPDATE`
    : await sql<Candidate[]>`
      SELECT id, profile_a, profile_b, reasons, status FROM duplicate_candidates WHERE id = ${id}`;
  if (!row) throw new DomainError(404, 'not_found', `no duplicate candidate ${id}`);
  if (row.status !== 'open')
    throw new DomainError(409, 'already_decided', `duplicate candidate ${id} is ${row.status}`);
  return row;
}

/**
 * Merges the two profiles of a duplicate candidate through identity resolution itself: a staff
 * decision is stored as one more identity link (joining an identity of each profile; its event id is
 * a negative number, no event's), and the component is resolved again under the usual locks. So the
 * merge passes the same guards (two userIds stay apart: 409), is logged in `merges` with the actor,
 * moves events, traits, consent, runs, points and experiments as any merge does, and
 * `unmergeProfile` undoes it (disabling that link). The candidate is marked merged in the same
 * transaction.
 *
 * @example
 * const { survivor, mergeId } = await mergeCandidate(sql, handOff, '12', 'admin-key', ctx, new Date());
 */
export async function mergeCandidate(
  sql: Sql,
  handOff: HandOff,
  candidateId: string,
  actor: string,
  ctx: IdentifyContext,
  now: Date,
): Promise<CandidateMerge> {
  const first = await openCandidate(sql, candidateId, false);
  const liveB = await liveProfileId(sql, first.profile_b);
  const bKeys = await sql<{ key: string }[]>`SELECT key FROM identities WHERE profile_id = ${liveB}`;
  return withProfileLocked(
    sql,
    first.profile_a,
    bKeys.map((r) => r.key),
    async (tx, liveA, links, keys) => {
      const candidate = await openCandidate(tx, candidateId, true);
      const b = await liveProfileId(tx, candidate.profile_b);
      if (b === liveA) throw new DomainError(409, 'already_merged', `the two profiles are already one (${liveA})`);
      const stored = await assignmentOf(tx, keys);
      const own = (p: string) => [...stored].flatMap(([k, q]) => (q === p ? [k] : [])).sort(compareStrings);
      const [keyA] = own(liveA);
      const [keyB] = own(b);
      if (!keyB) {
        // Profile b changed since its identities were read: lock its current ones too.
        const now = await tx<{ key: string }[]>`SELECT key FROM identities WHERE profile_id = ${b}`;
        throw new NeedsMoreLocks(new Set(now.map((r) => r.key)));
      }
      if (!keyA) throw new DomainError(409, 'no_identities', `profile ${liveA} holds no identity to merge by`);
      const [seq] = await tx<{ n: string }[]>`SELECT nextval('staff_link_ids')::text AS n`;
      const link: StoredLink = {
        setHash: linkHash([keyA, keyB]),
        keys: [keyA, keyB].sort(compareStrings),
        ts: now.getTime(),
        eventId: `-${seq!.n}`,
        disabledBy: null,
      };
      // The same pair joined before and unmerged since: this decision joins it again.
      await tx`
      INSERT INTO identity_links (set_hash, keys, ts, event_id)
      VALUES (${link.setHash}, ${link.keys}::text[], ${now}, ${link.eventId})
      ON CONFLICT (set_hash) DO UPDATE SET ts = excluded.ts, event_id = excluded.event_id, disabled_by = NULL`;
      const reason = `duplicate candidate ${candidateId} merged by staff (${candidate.reasons.join(', ')})`;
      const applied = await applyPartition(
        tx,
        [...links.filter((l) => l.setHash !== link.setHash), link],
        stored,
        ctx.identity,
        () => ({ reason, eventId: null, actor, kind: 'merge' }),
      );
      const survivor = applied.assignment.get(keyA)!;
      if (applied.assignment.get(keyB) !== survivor) {
        const refusal = applied.partition.refusals.find((r) => r.eventId === link.eventId);
        throw new DomainError(
          409,
          'merge_refused',
          `an identity guard keeps these profiles apart: ${refusal?.reason ?? 'refused'}`,
          { type: refusal?.type },
        );
      }
      const merged = survivor === liveA ? b : liveA;
      await settleProfiles(tx, applied, ctx);
      const [log] = await tx<{ id: string }[]>`
      SELECT id::text AS id
      FROM merges
      WHERE kind = 'merge' AND survivor_id = ${survivor} AND merged_id = ${merged}
      ORDER BY id DESC
      LIMIT 1`;
      await tx`
      UPDATE duplicate_candidates
      SET status = 'merged', decided_at = now(), decided_by = ${actor}, merge_id = ${log!.id}
      WHERE id = ${candidateId}`;
      // Both profiles' events moved: their tags, audiences and computed traits are evaluated again.
      await handOff(tx, 'profiles.changed', { profileIds: [survivor, merged] });
      return { survivor, merged, mergeId: log!.id };
    },
  );
}
