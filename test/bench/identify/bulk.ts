import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import {
  compareRefs,
  compareTraitEvents,
  emptyProfileState,
  extractIdentities,
  foldEvent,
  type Identity,
  type IdentityLink,
  type JsonObject,
  resolveIdentities,
  type TrackingEvent,
  validateEvent,
} from '@cairn/core';
import { DEFAULTS } from '@cairn/server';
import postgres from 'postgres';
import { createPii, type Pii } from '../../../server/src/pii/index.ts';
import { linkHash } from '../../../server/src/pipeline/identify/component.ts';
import { enrichEvent } from '../../../server/src/pipeline/ingest/enrich.ts';
import type { ClientEvent } from './people.ts';

// The fast setup: the state stage 2 would leave after processing each history (one person's or
// visitor's events) in order, computed here with the pipeline's own pure functions and written with
// COPY. Events are validated and enriched by ingest's own functions (validateEvent, enrichEvent),
// identities extracted by extractIdentities, link hashes by linkHash, each history's links checked to
// resolve to exactly one group by resolveIdentities, and traits folded by foldEvent in
// compareTraitEvents order. `checkSetup` in check.ts compares the result with the real pipeline.

/** What the bulk load wrote. */
export interface BulkStats {
  histories: number;
  profiles: number;
  events: number;
  identities: number;
  links: number;
  traits: number;
  seconds: number;
  /** Of which: waiting for COPY (beyond building the rows), building the deferred indexes, VACUUM ANALYZE. */
  copyWaitSeconds: number;
  indexSeconds: number;
  vacuumSeconds: number;
}

/** Non-unique indexes of stage 2's tables, dropped during the load and created again after it. */
const DEFERRED_INDEXES = ['events_profile_idx', 'identities_profile_idx', 'identity_links_keys_idx'];

interface Tables {
  events: string[];
  profiles: string[];
  identities: string[];
  links: string[];
  traits: string[];
}

const COLUMNS: Record<keyof Tables, string> = {
  events:
    'id, source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, processed_at, profile_id, identity_key',
  profiles: 'id, traits_through_ts, traits_through_id',
  identities: 'key, type, value, profile_id',
  links: 'set_hash, keys, ts, event_id',
  traits: 'profile_id, key, value, updated_at, event_id, source',
};
const TABLE: Record<keyof Tables, string> = {
  events: 'events',
  profiles: 'profiles',
  identities: 'identities',
  links: 'identity_links',
  traits: 'profile_traits',
};

// COPY text format: backslash, newline, carriage return and tab are escaped; NULL is \N.
function field(v: string | number | null): string {
  if (v === null) return '\\N';
  if (typeof v === 'number') return String(v);
  return v.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'));
}
const line = (values: (string | number | null)[]) => `${values.map(field).join('\t')}\n`;
// A text[] literal for COPY (identity keys may hold anything: quote every element).
const textArray = (xs: readonly string[]) =>
  `{${xs.map((x) => `"${x.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`;

interface Stored {
  id: string;
  ts: number;
  type: string;
  payload: JsonObject;
  ids: Identity[];
  keys: string[];
}

/**
 * Turns one history into the rows stage 2 would have written for it. Throws if its links would not
 * resolve into exactly one profile (the bulk state would then not be what the pipeline makes).
 */
function historyRows(
  history: readonly ClientEvent[],
  next: { id: number },
  sourceId: string,
  processedAt: string,
  out: Tables,
  pii: Pii,
): { identities: number; links: number; traits: number } {
  const stored: Stored[] = [];
  const rows: { row: ReturnType<typeof enrich>; s: Stored }[] = [];
  for (const e of history) {
    const row = enrich(e, sourceId, pii);
    // Stored sealed (PII at rest); stage 2 opens it to extract identities and fold traits.
    const payload = pii.openPayload(JSON.parse(row.payload) as JsonObject);
    const ids = extractIdentities(payload as unknown as TrackingEvent, {});
    const s: Stored = {
      id: String(next.id++),
      ts: Date.parse(row.timestamp),
      type: row.type,
      payload,
      ids,
      keys: ids.map(pii.identityKey),
    };
    stored.push(s);
    rows.push({ row, s });
  }
  // Links: each distinct identity set, with its earliest (ts, id) event, as processChunk keeps them.
  const links = new Map<string, Stored>();
  for (const s of [...stored].sort((a, b) => compareRefs({ ts: a.ts, eventId: a.id }, { ts: b.ts, eventId: b.id }))) {
    if (!s.keys.length) continue;
    const h = linkHash(s.keys);
    if (!links.has(h)) links.set(h, s);
  }
  const resolverLinks: IdentityLink[] = [...links.values()].map((s) => ({ eventId: s.id, ts: s.ts, ids: s.ids }));
  const partition = resolveIdentities(resolverLinks, {});
  const group = partition.groups[0];
  if (partition.groups.length !== 1 || partition.refusals.length || !group) {
    throw new Error(`a setup history resolves to ${partition.groups.length} profiles: ${JSON.stringify(history)}`);
  }
  const profile = randomUUID();
  const state = emptyProfileState();
  for (const s of [...stored].sort(compareTraitEvents)) foldEvent(state, s, {});
  out.profiles.push(
    line([profile, state.through ? new Date(state.through.ts).toISOString() : null, state.through?.id ?? null]),
  );
  for (const id of group.identities) {
    out.identities.push(line([pii.identityKey(id), id.type, pii.identityValue(id), profile]));
  }
  for (const [h, s] of links) out.links.push(line([h, textArray(s.keys), new Date(s.ts).toISOString(), s.id]));
  for (const [key, t] of state.traits) {
    const value = JSON.stringify(pii.sealValue(key, t.value));
    out.traits.push(line([profile, key, value, new Date(t.ts).toISOString(), t.eventId, t.source]));
  }
  for (const { row, s } of rows) {
    out.events.push(
      line([
        s.id,
        row.sourceId,
        row.messageId,
        row.type,
        row.event,
        row.userId,
        row.anonymousId,
        row.timestamp,
        row.receivedAt,
        row.payload,
        processedAt,
        s.keys.length ? profile : null,
        s.keys[0] ?? null,
      ]),
    );
  }
  return { identities: group.identities.length, links: links.size, traits: state.traits.size };
}

function enrich(e: ClientEvent, sourceId: string, pii: Pii) {
  const v = validateEvent(e, '', undefined);
  if (!v.ok) throw new Error(`setup event refused by validation: ${JSON.stringify(v.issue)}`);
  // Received a second after it happened, from localhost, without sentAt: the timestamp stays as sent.
  const r = enrichEvent(
    v.event,
    {
      sourceId,
      receivedAt: Date.parse(e.timestamp) + 1000,
      ip: '127.0.0.1',
      batchSentAt: undefined,
      maxFutureSkewMs: DEFAULTS.maxFutureSkewMs,
      pii,
    },
    '',
  );
  if (!r.ok) throw new Error(`setup event refused by enrichment: ${JSON.stringify(r.issue)}`);
  return r.row;
}

async function copy(sql: postgres.ReservedSql, table: keyof Tables, lines: string[]): Promise<void> {
  if (!lines.length) return;
  // Fixed identifiers of this file; COPY takes no parameters. COPY writes the events' ids as given
  // (it does not apply GENERATED ALWAYS); the sequence is moved past them afterwards.
  const writable = await sql.unsafe(`COPY ${TABLE[table]} (${COLUMNS[table]}) FROM STDIN`).writable();
  await new Promise<void>((resolve, reject) => {
    writable.on('error', reject);
    writable.on('finish', resolve);
    writable.end(lines.join(''));
  });
}

/**
 * Writes the state of `histories` (each one person or visitor, whose events stage 2 would put in
 * one profile) straight into the tables, as processed events. Runs VACUUM ANALYZE at the end, as
 * autovacuum would have on a database that grew to this size.
 *
 * @example
 * const stats = await bulkLoad(url, histories, { sourceId: 'src_demo' });
 */
export async function bulkLoad(
  url: string,
  histories: Iterable<ClientEvent[]>,
  options: { sourceId: string; onProgress?: (done: number) => void; secret?: string },
): Promise<BulkStats> {
  const started = performance.now();
  // Without TCP_NODELAY each COPY's CopyDone waits for a delayed ACK (see ../ingest/raw.ts).
  const sql = postgres(url, {
    max: 3,
    onnotice: () => {},
    socket: ({ host, port }: { host: string[]; port: number[] }) =>
      connect({ host: host[0], port: port[0]!, noDelay: true }),
  } as postgres.Options<Record<string, never>>);
  const stats: BulkStats = {
    histories: 0,
    profiles: 0,
    events: 0,
    identities: 0,
    links: 0,
    traits: 0,
    seconds: 0,
    copyWaitSeconds: 0,
    indexSeconds: 0,
    vacuumSeconds: 0,
  };
  try {
    const [{ max }] = await sql<[{ max: string | null }]>`SELECT max(id)::text AS max FROM events`;
    // The server's secret (CAIRN_SECRET, else the one it generated at its first start): the setup
    // seals PII and computes blind indexes exactly as the server will.
    const [generated] = await sql<{ secret: string }[]>`
      SELECT value->>'secret' AS secret FROM settings WHERE key = 'generated_secret'`;
    const secret = options.secret ?? process.env.CAIRN_SECRET ?? generated?.secret;
    if (!secret)
      throw new Error('bulkLoad: no CAIRN_SECRET and no generated secret: start a server on the database first');
    const pii = createPii({ secret });
    // Secondary indexes are built once after the load (faster than row by row), from their own definitions.
    const deferred = await sql<{ name: string; def: string }[]>`
      SELECT indexname AS name, indexdef AS def FROM pg_indexes
      WHERE schemaname = current_schema() AND indexname = ANY(${DEFERRED_INDEXES})`;
    // A partitioned table's index reads `ON ONLY` in pg_indexes: rebuilt as written, it would cover no
    // partition (the parent's index stays invalid) and stage 2's lookups by profile would scan.
    for (const d of deferred) d.def = d.def.replace(' ON ONLY ', ' ON ');
    for (const d of deferred) await sql`DROP INDEX ${sql(d.name)}`;
    const next = { id: Number(max ?? 0) + 1 };
    const processedAt = new Date().toISOString();
    const empty = (): Tables => ({ events: [], profiles: [], identities: [], links: [], traits: [] });
    let tables = empty();
    // Two connections of their own (postgres.js would pipeline a query into a connection in COPY
    // mode): profiles, then identities and traits that reference them; events and links on the other.
    const [a, b] = await Promise.all([sql.reserve(), sql.reserve()]);
    let inFlight: Promise<unknown> = Promise.resolve();
    const flush = async () => {
      const t = tables;
      tables = empty();
      const waited = performance.now();
      await inFlight;
      stats.copyWaitSeconds += (performance.now() - waited) / 1000;
      inFlight = Promise.all([
        (async () => {
          await copy(a, 'profiles', t.profiles);
          await copy(a, 'identities', t.identities);
          await copy(a, 'traits', t.traits);
        })(),
        (async () => {
          await copy(b, 'events', t.events);
          await copy(b, 'links', t.links);
        })(),
      ]);
      // Keep a failure from going unhandled while the next chunk is built (it is awaited next flush).
      inFlight.catch(() => {});
    };
    for (const history of histories) {
      const n = historyRows(history, next, options.sourceId, processedAt, tables, pii);
      stats.histories++;
      stats.profiles++;
      stats.events += history.length;
      stats.identities += n.identities;
      stats.links += n.links;
      stats.traits += n.traits;
      if (tables.events.length >= 10_000) {
        await flush();
        options.onProgress?.(stats.histories);
      }
    }
    await flush();
    const waited = performance.now();
    await inFlight;
    stats.copyWaitSeconds += (performance.now() - waited) / 1000;
    a.release();
    b.release();
    await sql`SELECT setval(pg_get_serial_sequence('events', 'id'), ${next.id - 1})`;
    const indexing = performance.now();
    await Promise.all(deferred.map((d) => sql.unsafe(d.def)));
    stats.indexSeconds = (performance.now() - indexing) / 1000;
    const vacuum = performance.now();
    await sql`VACUUM ANALYZE`;
    stats.vacuumSeconds = (performance.now() - vacuum) / 1000;
  } finally {
    await sql.end({ timeout: 5 });
  }
  stats.seconds = (performance.now() - started) / 1000;
  return stats;
}
