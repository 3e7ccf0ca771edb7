import { randomBytes } from 'node:crypto';
import { emptyProfileState, foldEvents, type IdentityOptions, type TraitOptions } from '@cairn/core';
import type { Transaction } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import { reattributeTraitCells } from '../measure/rollup-traits.ts';
import { saveConsent } from './consent.ts';
import { type ImportedRow, rowHash } from './import-rows.ts';
import { lockIdentities, lockProfiles } from './locks.ts';
import { loadStates, refoldStates, saveStates } from './state.ts';
import type { IdentifyContext, LoadedEvent } from './types.ts';

// One chunk of an import in one transaction: identity resolution (attach to the profile holding the
// row's identities, or a new profile), one already-processed identify event per changed row (so a
// later refold of the profile keeps what the import set), traits folded as stage 2 folds them,
// consent as a change only when it differs, static tags. Nothing is handed to stages 3-5: no flow
// and no delivery reacts to an import.

/** What an import needs of stage 2's settings. */
export interface ImportContext {
  identity: IdentityOptions;
  traits: TraitOptions;
  purposes: readonly string[] | null;
  pii: Pii;
}

// New profiles get time-ordered ids (RFC 9562 version 7: 48 bits of Unix ms, then random): an import's
// new profiles land side by side in every index keyed by profile (traits, events, identities, consent),
// where random (v4) ids touch a random index page per row, and a million profiles' pages outgrow
// shared_buffers. Written here, not taken from a library: 8 lines, and node:crypto has only v4. The
// clock is the machine's, not the runtime's: the prefix orders storage, it decides nothing.
function timeOrderedId(): string {
  const b = randomBytes(16);
  b.writeUIntBE(Date.now(), 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** What one chunk did. */
export interface ChunkResult {
  created: number;
  updated: number;
  unchanged: number;
  /** Rows refused while writing (identities of two profiles), by line. */
  refused: { line: number; reason: string }[];
}

/** The source imported events are stored under (migration 0029). */
export const IMPORT_SOURCE = 'import';

/** A chunk whose identities (and the profiles holding them) are locked: what {@link writeLocked} writes. */
export interface LockedChunk {
  result: ChunkResult;
  accepted: { row: ImportedRow; keys: string[]; hash: string; profile: string }[];
  /** Profiles this chunk creates. */
  fresh: Set<string>;
}

/**
 * Writes one chunk of valid rows. `importId` names the import in tag assignments and hashes.
 *
 * @example
 * const r = await writeChunk(tx, rows, { importId: '7', ctx, now: new Date() });
 */
export async function writeChunk(
  tx: Transaction,
  rows: readonly ImportedRow[],
  opts: { importId: string; ctx: ImportContext; now: Date },
): Promise<ChunkResult> {
  return writeLocked(tx, await lockChunk(tx, rows, opts.ctx), opts);
}

/**
 * The first half of {@link writeChunk}: locks the rows' identities (sorted, blocking), skips rows
 * imported before with the same content, resolves each row's profile (the one holding its
 * identities, or a new one) and locks the existing ones. After it the chunk waits on no lock.
 *
 * @example
 * const locked = await lockChunk(tx, rows, ctx);
 */
export async function lockChunk(
  tx: Transaction,
  rows: readonly ImportedRow[],
  ctx: ImportContext,
): Promise<LockedChunk> {
  const result: ChunkResult = { created: 0, updated: 0, unchanged: 0, refused: [] };
  const fresh = new Set<string>();
  const accepted: LockedChunk['accepted'] = [];
  if (!rows.length) return { result, accepted, fresh };
  const keyed = rows.map((row) => {
    const keys = row.identities.map(ctx.pii.identityKey);
    return { row, keys, hash: rowHash(ctx.pii, row) };
  });
  await lockIdentities(
    tx,
    keyed.flatMap((k) => k.keys),
  );
  const stored = await tx<{ key: string; hash: string }[]>`
    SELECT key, hash FROM import_hashes WHERE key = ANY(${keyed.map((k) => k.keys[0]!)}::text[])`;
  const storedHash = new Map(stored.map((s) => [s.key, s.hash]));
  const changed = keyed.filter((k) => storedHash.get(k.keys[0]!) !== k.hash);
  result.unchanged = keyed.length - changed.length;
  if (!changed.length) return { result, accepted, fresh };

  const found = await tx<{ key: string; profile_id: string }[]>`
    SELECT key, profile_id FROM identities WHERE key = ANY(${changed.flatMap((k) => k.keys)}::text[])`;
  const owner = new Map(found.map((f) => [f.key, f.profile_id]));
  const existing = new Set(found.map((f) => f.profile_id));
  for (const k of changed) {
    const profiles = new Set(k.keys.map((key) => owner.get(key)).filter((p): p is string => !!p));
    if (profiles.size > 1) {
      // Merging is stage 2's decision, with its guards and merge log; an import does not merge.
      result.refused.push({ line: k.row.line, reason: 'identities belong to different profiles (not merged)' });
      continue;
    }
    const profile = [...profiles][0] ?? timeOrderedId();
    if (!profiles.size) fresh.add(profile);
    // Later rows of this chunk with one of these identities find this profile.
    for (const key of k.keys) owner.set(key, profile);
    accepted.push({ ...k, profile });
  }
  if (accepted.length) await lockProfiles(tx, existing);
  return { result, accepted, fresh };
}

/**
 * The second half of {@link writeChunk}: one processed identify event per row, profiles created,
 * identities attached, traits folded, consent, tags and row hashes. New profiles skip what only an
 * existing one needs (loading its stored state, updating its fold position); the writes after the
 * event insert go out together, in one round trip.
 *
 * @example
 * const r = await writeLocked(tx, locked, { importId: '7', ctx, now: new Date() });
 */
export async function writeLocked(
  tx: Transaction,
  locked: LockedChunk,
  opts: { importId: string; ctx: ImportContext; now: Date },
): Promise<ChunkResult> {
  const { ctx, now } = opts;
  const { result, accepted, fresh } = locked;
  if (!accepted.length) return result;
  const profileIds = [...new Set(accepted.map((a) => a.profile))];
  for (const p of profileIds) if (fresh.has(p)) result.created++;
  result.updated = profileIds.length - result.created;

  const events = accepted.map((a) => ({
    m: `import:${a.keys[0]}:${a.hash}`,
    u: typeof a.row.payload.userId === 'string' ? a.row.payload.userId : null,
    a: typeof a.row.payload.anonymousId === 'string' ? a.row.payload.anonymousId : null,
    j: JSON.stringify(
      ctx.pii.sealPayload({ ...a.row.payload, messageId: `import:${a.hash}`, timestamp: now.toISOString() }),
    ),
    p: a.profile,
    k: a.keys[0],
  }));
  // A row changed back to an earlier content has that content's event already (an import event is
  // attached to the profile holding its key identity): its id is reused. A new profile has neither
  // such events nor a stored state to load.
  const oldProfiles = profileIds.filter((p) => !fresh.has(p));
  const [prior, loadedStates] = await Promise.all([
    oldProfiles.length
      ? tx<{ id: string; message_id: string }[]>`
          SELECT id, message_id FROM events
          WHERE profile_id = ANY(${oldProfiles}::uuid[])
            AND source_id = ${IMPORT_SOURCE}
            AND message_id = ANY(${events.map((e) => e.m)}::text[])`
      : [],
    loadStates(tx, oldProfiles, ctx.pii),
  ]);
  const known = new Set(prior.map((r) => r.message_id));
  const unseen = events.filter((e) => !known.has(e.m));
  // Events have no foreign key to profiles: they go first, and their ids are in the fold and in the
  // new profiles' rows. No other writer can store these message ids (each holds its key identity's lock).
  const inserted = unseen.length
    ? await tx<{ id: string; message_id: string }[]>`
        INSERT INTO events (source_id, message_id, type, user_id, anonymous_id, timestamp, received_at, payload,
          processed_at, profile_id, identity_key)
        SELECT ${IMPORT_SOURCE}, m, 'identify', u, a, ${now}, ${now}, j::jsonb, ${now}, p, k
        FROM json_to_recordset(${JSON.stringify(unseen)}::text::json) AS x (m text, u text, a text, j text, p uuid, k text)
        RETURNING id, message_id`
    : [];
  const ids = [...prior, ...inserted];
  const eventId = new Map(ids.map((r) => [r.message_id, String(r.id)]));

  const before = loadedStates;
  for (const p of fresh) before.set(p, emptyProfileState());
  const after = structuredClone(before);
  const loaded: LoadedEvent[] = [];
  const refold: string[] = [];
  for (const [i, a] of accepted.entries()) {
    const id = eventId.get(events[i]!.m);
    if (!id) throw new Error(`line ${a.row.line}: its import event was neither found nor stored`);
    const ev = { id, ts: now.getTime(), type: 'identify', payload: a.row.payload };
    if (!foldEvents(after.get(a.profile)!, [ev], ctx.traits)) refold.push(a.profile);
    loaded.push({ ...ev, keys: a.keys, setHash: null, sealed: [] });
  }
  if (refold.length) for (const [p, s] of await refoldStates(tx, refold, ctx.traits, ctx.pii)) after.set(p, s);
  // New profiles are inserted with their fold position, so saveStates has none of theirs to update.
  const created = [...fresh].map((p) => {
    const through = after.get(p)!.through;
    before.get(p)!.through = through;
    return { p, t: through ? new Date(through.ts).toISOString() : null, e: through?.id ?? null };
  });
  const identities = accepted.flatMap((a) =>
    a.row.identities.map((id, i) => ({ k: a.keys[i]!, t: id.type, v: ctx.pii.identityValue(id), p: a.profile })),
  );
  const hashes = accepted.map((a) => ({ k: a.keys[0], h: a.hash }));
  // Sent together and run in this order (profiles before the rows that reference them).
  const writes: Promise<unknown>[] = [];
  if (created.length) {
    writes.push(
      tx`
        INSERT INTO profiles (id, created_at, updated_at, traits_through_ts, traits_through_id)
        SELECT p, ${now}, ${now}, t, e FROM json_to_recordset(${JSON.stringify(created)}::text::json)
          AS x (p uuid, t timestamptz, e bigint)`.execute(),
    );
  }
  writes.push(
    tx`
      INSERT INTO identities (key, type, value, profile_id, created_at)
      SELECT k, t, v, p, ${now} FROM json_to_recordset(${JSON.stringify(identities)}::text::json)
        AS x (k text, t text, v text, p uuid)
      ON CONFLICT (key) DO NOTHING`.execute(),
  );
  writes.push(saveStates(tx, before, after, ctx.pii));
  const lookup = new Map(accepted.map((a) => [a.keys[0]!, a.profile]));
  writes.push(saveConsent(tx, loaded, lookup, { purposes: ctx.purposes } as IdentifyContext));
  writes.push(saveTags(tx, accepted, opts.importId, now));
  writes.push(
    tx`
      INSERT INTO import_hashes (key, hash, import_id, updated_at)
      SELECT k, h, ${opts.importId}, ${now} FROM json_to_recordset(${JSON.stringify(hashes)}::text::json) AS x (k text, h text)
      ON CONFLICT (key) DO UPDATE SET hash = excluded.hash, import_id = excluded.import_id, updated_at = excluded.updated_at`.execute(),
  );
  await Promise.all(writes);
  // No measure job follows an import: trait breakdowns (migration 0044) move with the traits here.
  await reattributeTraitCells(tx, oldProfiles);
  return result;
}

async function saveTags(
  tx: Transaction,
  accepted: readonly { row: ImportedRow; profile: string }[],
  importId: string,
  now: Date,
): Promise<void> {
  const rows = accepted.flatMap((a) => a.row.tags.map((t) => ({ t, p: a.profile })));
  if (!rows.length) return;
  // The partial unique index on current assignments makes a tag carried already a no-op.
  await tx`
    INSERT INTO tag_assignments (tag, profile_id, added_at, added_by, added_reason)
    SELECT DISTINCT t, p, ${now}::timestamptz, ${`import:${importId}`}, 'bulk import'
    FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (t text, p uuid)
    ON CONFLICT (tag, profile_id) WHERE removed_at IS NULL DO NOTHING`;
}
