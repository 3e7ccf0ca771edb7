import type { Sql, Transaction, Tx } from '../../db/index.ts';
import { DomainError } from '../../infra/errors.ts';
import { retryTransaction } from '../../infra/transaction.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import { forgetFirstTimes, forgetPeople, peopleRowsOf, recountRollup, rollupKeysOf } from '../measure/index.ts';
import { resyncPeriodPeople } from '../measure/rollup-period-people.ts';
import { resyncTraitCells } from '../measure/rollup-traits.ts';
import { applyPartition, assignmentOf, loadComponent, type StoredLink } from './component.ts';
import { rebuildConsent } from './consent.ts';
import { lockIdentities, lockProfiles, NeedsMoreLocks } from './locks.ts';
import { type IdentifyContext, settleProfiles, suppressionHash } from './process.ts';

/**
 * The live profile an id stands for: itself, or the survivor it was merged into. Throws 404 when
 * unknown, 410 when erased.
 *
 * @example
 * const id = await liveProfileId(sql, requestedId);
 */
export async function liveProfileId(tx: Tx, id: string): Promise<string> {
  const [row] = await tx<{ id: string; merged_into: string | null; erased_at: Date | null }[]>`
    SELECT id, merged_into, erased_at FROM profiles WHERE id = ${id}`;
  if (!row) throw new DomainError(404, 'not_found', `no profile ${id}`);
  if (row.erased_at) throw new DomainError(410, 'erased', `profile ${id} was erased`);
  if (!row.merged_into) return row.id;
  return liveProfileId(tx, row.merged_into);
}

// Tries of one admin operation: each restart holds more of a growing component's locks.
const MAX_ATTEMPTS = 20;

/**
 * Runs `fn` in a transaction holding the locks of a profile's whole identity component (and of its
 * profiles), restarting with more locks when the component grows meanwhile — the same protocol as
 * the identify worker, so admin operations and workers never interleave on one person.
 */
export async function withProfileLocked<T>(
  sql: Sql,
  profileId: string,
  extraKeys: readonly string[],
  fn: (tx: Transaction, live: string, links: StoredLink[], keys: string[]) => Promise<T>,
): Promise<T> {
  let extra = new Set<string>(extraKeys);
  return retryTransaction(
    sql,
    async (tx) => {
      const live = await liveProfileId(tx, profileId);
      const own = await tx<{ key: string }[]>`SELECT key FROM identities WHERE profile_id = ${live}`;
      const held = await lockIdentities(tx, [...own.map((r) => r.key), ...extra]);
      // The profile may have been merged while we waited for the locks.
      if ((await liveProfileId(tx, profileId)) !== live) throw new NeedsMoreLocks(extra);
      const component = await loadComponent(tx, [...own.map((r) => r.key), ...extra], held);
      if (!component) throw new DomainError(409, 'component_too_large', 'identity component too large');
      const assignment = await assignmentOf(tx, [...component.keys]);
      await lockProfiles(tx, new Set([live, ...assignment.values()]));
      return fn(tx, live, component.links, [...component.keys]);
    },
    {
      attempts: MAX_ATTEMPTS,
      // The component grew (or the profile was merged) while we were locking: restart holding more.
      retryIf: (err) => {
        if (!(err instanceof NeedsMoreLocks)) return false;
        extra = new Set([...extra, ...err.keys]);
        return true;
      },
    },
  );
}

interface MergeRow {
  id: string;
  kind: string;
  survivor_id: string;
  merged_id: string;
  undone_at: Date | null;
  before: { survivor: string[]; merged: string[] };
}

/**
 * Undoes a merge: the links that joined the two sides stop counting as evidence (also for later
 * events carrying the same identities together), the merged profile comes back under its own id
 * with the identities it had, its events return to it and both profiles' traits are refolded from
 * their events. Recorded in the merge log (kind `unmerge`, with who asked).
 *
 * @example
 * await unmergeProfile(sql, handOff, survivorId, mergeId, 'admin-key', ctx);
 */
export async function unmergeProfile(
  sql: Sql,
  handOff: HandOff,
  profileId: string,
  mergeId: string,
  actor: string,
  ctx: IdentifyContext,
): Promise<{ survivor: string; restored: string; unmergeId: string }> {
  const [merge] = await sql<MergeRow[]>`
    SELECT id, kind, survivor_id, merged_id, undone_at, before FROM merges WHERE id = ${mergeId}`;
  if (!merge || merge.kind !== 'merge') throw new DomainError(404, 'not_found', `no merge ${mergeId}`);
  const mergedKeys = new Set(merge.before.merged);
  return withProfileLocked(sql, profileId, [...mergedKeys], async (tx, live, links, keys) => {
    const [again] = await tx<MergeRow[]>`SELECT undone_at FROM merges WHERE id = ${mergeId} FOR UPDATE`;
    if (again?.undone_at) throw new DomainError(409, 'already_undone', `merge ${mergeId} was already undone`);
    if ((await liveProfileId(tx, merge.survivor_id)) !== live) {
      throw new DomainError(409, 'not_survivor', `merge ${mergeId} did not merge into profile ${profileId}`);
    }
    const stored = await assignmentOf(tx, keys);
    const survivorSide = new Set([...stored].filter(([k, p]) => p === live && !mergedKeys.has(k)).map(([k]) => k));
    const disable = links.filter(
      (l) => !l.disabledBy && l.keys.some((k) => mergedKeys.has(k)) && l.keys.some((k) => survivorSide.has(k)),
    );
    const [log] = await tx<{ id: string }[]>`
      INSERT INTO merges (kind, survivor_id, merged_id, reason, actor, before)
      VALUES ('unmerge', ${live}, ${merge.merged_id}, ${`unmerge of merge ${mergeId}`}, ${actor},
        ${tx.json({ survivor: [...survivorSide].sort(), merged: [...mergedKeys].filter((k) => stored.get(k) === live).sort() })})
      RETURNING id`;
    if (disable.length) {
      await tx`UPDATE identity_links SET disabled_by = ${log!.id} WHERE set_hash = ANY(${disable.map((l) => l.setHash)}::text[])`;
    }
    const next = links.map((l) => (disable.includes(l) ? { ...l, disabledBy: log!.id } : l));
    const labels = new Map(stored);
    for (const k of mergedKeys) if (labels.get(k) === live) labels.set(k, merge.merged_id);
    const applied = await applyPartition(
      tx,
      next,
      stored,
      ctx.identity,
      () => ({ reason: `unmerge of merge ${mergeId}`, eventId: null, actor, kind: 'unmerge' }),
      labels,
    );
    await settleProfiles(tx, applied, ctx);
    await tx`UPDATE merges SET undone_at = now(), undone_by = ${log!.id} WHERE id = ${mergeId}`;
    // Both profiles' events moved: their tags, audiences and computed traits are evaluated again.
    await handOff(tx, 'profiles.changed', { profileIds: [live, merge.merged_id] });
    return { survivor: live, restored: merge.merged_id, unmergeId: log!.id };
  });
}

/**
 * Erases a profile (right to be forgotten): its identities, traits, accounts links, consent history,
 * events and merge history, and those of profiles merged into it. Keeps a keyed hash of each identity
 * (no clear text) so later events carrying one are dropped and counted, the erasure record with who
 * asked, and queues a `profile.erased` notice for destinations.
 *
 * @example
 * const erasure = await eraseProfile(sql, handOff, id, 'admin-key', ctx);
 */
export async function eraseProfile(
  sql: Sql,
  handOff: HandOff,
  profileId: string,
  actor: string,
  ctx: IdentifyContext,
): Promise<{ erasureId: string; profileIds: string[]; identities: number; events: number }> {
  return withProfileLocked(sql, profileId, [], async (tx, live) => {
    const merged = await tx<{ id: string }[]>`
      WITH RECURSIVE chain AS (
        SELECT id FROM profiles WHERE id = ${live}
        UNION SELECT p.id FROM profiles p JOIN chain c ON p.merged_into = c.id)
      SELECT id FROM chain`;
    const ids = merged.map((r) => r.id);
    const identities = await tx<{ key: string; type: string; value: string }[]>`
      SELECT key, type, value FROM identities WHERE profile_id = ${live}`;
    const keys = identities.map((r) => r.key);
    const [erasure] = await tx<{ id: string }[]>`
      INSERT INTO erasures (profile_id, requested_by, identities, events) VALUES (${live}, ${actor}, ${keys.length}, 0)
      RETURNING id`;
    const hashes = keys.map((k) => suppressionHash(ctx.secret, k));
    if (hashes.length) {
      await tx`INSERT INTO suppressions (hash, erasure_id) SELECT unnest(${hashes}::text[]), ${erasure!.id} ON CONFLICT DO NOTHING`;
      await tx`DELETE FROM identity_links WHERE keys && ${keys}::text[]`;
      await tx`DELETE FROM identity_refusals WHERE groups && ${keys}::text[]`;
    }
    const told = await tx<{ id: string }[]>`
      SELECT DISTINCT destination_id AS id FROM deliveries
      WHERE status = 'delivered' AND event_id IN (SELECT id FROM events WHERE profile_id = ANY(${ids}::uuid[]))
      UNION
      SELECT DISTINCT destination_id FROM deliveries
      WHERE status = 'delivered' AND event_id IS NULL AND profile_id = ANY(${ids}::uuid[])`;
    // The delivery ledger names the events (idempotency keys hold messageIds): it goes with them, and with
    // the messages flows sent the person (rows without an event).
    await tx`DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE profile_id = ANY(${ids}::uuid[]))`;
    await tx`DELETE FROM deliveries WHERE event_id IS NULL AND profile_id = ANY(${ids}::uuid[])`;
    // Stage 4's runs (their data and journal hold what the flows read of the person). Locked first: a step
    // under way on one of them commits before, and its journal entries go too; a later one finds no run.
    await tx`SELECT id FROM flow_runs WHERE profile_id = ANY(${ids}::uuid[]) ORDER BY id FOR UPDATE`;
    await tx`DELETE FROM flow_steps WHERE run_id IN (SELECT id FROM flow_runs WHERE profile_id = ANY(${ids}::uuid[]))`;
    await tx`DELETE FROM flow_runs WHERE profile_id = ANY(${ids}::uuid[])`;
    // Their planned date-trait entries (a moment derived from a date of theirs: a birthday).
    await tx`DELETE FROM flow_planned WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM profile_employees WHERE profile_id = ANY(${ids}::uuid[])`;
    // Their A/B test assignments (the experiments' counts are sums that name nobody and stay).
    await tx`DELETE FROM flow_experiment_people WHERE profile_id = ANY(${ids}::uuid[])`;
    // Their points ledger; coupons issued to them stay counted in their pool but name nobody.
    await tx`DELETE FROM points_ledger WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`UPDATE coupons SET issued_to = NULL WHERE issued_to = ANY(${ids}::uuid[])`;
    await tx`UPDATE coupons SET redeemed_by = NULL, redeemed_event = NULL WHERE redeemed_by = ANY(${ids}::uuid[])`;
    // Stage 6's hourly counts lose these events by the DELETE's own trigger (migration 0045); the rolled-up
    // properties' values of their keys are recounted once they are gone.
    const rolledUp = await rollupKeysOf(tx, { profileIds: ids });
    const personHours = await peopleRowsOf(tx, ids);
    const events = await tx`DELETE FROM events WHERE profile_id = ANY(${ids}::uuid[])`;
    await recountRollup(tx, rolledUp);
    await forgetPeople(tx, personHours);
    await resyncPeriodPeople(tx, ids);
    await resyncTraitCells(tx, ids);
    await forgetFirstTimes(tx, ids);
    await tx`DELETE FROM consent_changes WHERE profile_id = ANY(${ids}::uuid[])`;
    // Stage 3's state about the person goes too (memberships and tags are personal data).
    await tx`DELETE FROM audience_memberships WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM tag_assignments WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM computed_trait_values WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM profile_traits WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM profile_accounts WHERE profile_id = ANY(${ids}::uuid[])`;
    // Duplicate detection's keyed hashes of their name, email and phone, and the pairs naming them.
    await tx`DELETE FROM duplicate_keys WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM duplicate_sources WHERE profile_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM duplicate_candidates WHERE profile_a = ANY(${ids}::uuid[]) OR profile_b = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM merges WHERE survivor_id = ANY(${ids}::uuid[]) OR merged_id = ANY(${ids}::uuid[])`;
    await tx`DELETE FROM identities WHERE profile_id = ANY(${ids}::uuid[])`;
    // The fold baselines of their dropped events (traits). After the identities: a retention run recording
    // one for these keys holds their rows, so it has committed by now (or will find them gone).
    await tx`
      DELETE FROM fold_baselines
      WHERE identity_key = ANY(${keys}::text[]) OR identity_key = ANY(${ids.map((p) => `profile:${p}`)}::text[])`;
    await tx`
      UPDATE profiles SET erased_at = now(), merged_into = NULL, traits_through_ts = NULL, traits_through_id = NULL,
        updated_at = now()
      WHERE id = ANY(${ids}::uuid[])`;
    await tx`UPDATE erasures SET events = ${events.count} WHERE id = ${erasure!.id}`;
    await handOff(tx, 'profile.erased', {
      erasureId: erasure!.id,
      profileIds: ids,
      // Sensitive ones stay sealed in the job (it sits in pg-boss's table); forget.ts opens them.
      identities: identities.map((i) => ({ type: i.type, value: i.value })),
      requestedBy: actor,
      destinationIds: told.map((t) => t.id),
    });
    return { erasureId: erasure!.id, profileIds: ids, identities: keys.length, events: events.count };
  });
}

/**
 * Records consent choices made through the API (by staff or the person's own preference centre),
 * each kept with its time, source and actor.
 *
 * @example
 * await setConsent(sql, handOff, id, { marketing: false }, 'admin-key', ctx);
 */
export async function setConsent(
  sql: Sql,
  handOff: HandOff,
  profileId: string,
  purposes: Readonly<Record<string, boolean>>,
  actor: string,
  ctx: Pick<IdentifyContext, 'purposes'>,
): Promise<string> {
  return withProfileLocked(sql, profileId, [], async (tx, live) => {
    const rows = Object.entries(purposes).map(([u, g]) => ({ u: u.trim().toLowerCase(), g }));
    await tx`
      INSERT INTO consent_changes (profile_id, purpose, granted, at, source, actor)
      SELECT ${live}, u, g, now(), 'api', ${actor}
      FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (u text, g boolean)`;
    // Event choices timestamped after now() that repeated the choice in force at their time were not
    // recorded; this entry can make them changes again, so the profile's event history is rebuilt.
    await rebuildConsent(tx, [live], ctx);
    // Audiences and tags reading consent follow, in this transaction (a crash after the commit cannot
    // leave the consent changed and the audiences not told).
    await handOff(tx, 'profiles.changed', { profileIds: [live] });
    return live;
  });
}
