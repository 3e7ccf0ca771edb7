import { type JsonObject, storableText } from '@cairn/core';
import { isDataError, type Sql } from '../../db/index.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { Pii } from '../../pii/index.ts';
import { createBatcher } from './batcher.ts';
import { type FailedEventRow, insertFailedEvents } from './queries.ts';

/** The request an event or payload was refused in, as recorded with it. */
export interface RequestInfo {
  method: string;
  path: string;
  ip: string | undefined;
  userAgent: string | undefined;
  contentType: string | undefined;
  origin: string | undefined;
}

/** Records refusals in failed_events, batched like events; `record` resolves after COMMIT. */
export interface FailureRecorder {
  record(rows: FailedEventRow[]): Promise<void>;
  drain(): Promise<void>;
}

/**
 * Creates the failure recorder.
 *
 * @example
 * await failures.record([failedPayload(info, null, 401, 'unknown_write_key', 'unknown write key', raw)]);
 */
export function createFailureRecorder(sql: Sql, metrics: Metrics, pii: Pii): FailureRecorder {
  const batcher = createBatcher<FailedEventRow[], void>({
    async write(groups) {
      try {
        await insertFailedEvents(sql, groups.flat());
      } catch (err) {
        if (!isDataError(err)) throw err;
        // One refusal could not be stored as given: store the others, and that one without its JSON.
        for (const row of groups.flat()) {
          await insertFailedEvents(sql, [row]).catch(async (e) => {
            if (!isDataError(e)) throw e;
            await insertFailedEvents(sql, [{ ...row, event: null, raw: row.raw ?? Buffer.from(row.event ?? '') }]);
          });
        }
      }
      return groups.map(() => undefined);
    },
    weight: (rows) => rows.length,
    maxWeight: 1000,
    concurrency: 2,
    parallelWeight: 100,
  });
  return {
    async record(rows) {
      if (rows.length === 0) return;
      for (const r of rows) metrics.eventsRejected.inc({ reason: r.code });
      await batcher.submit(rows.map((r) => sealFailure(pii, r)));
    },
    drain: batcher.drain,
  };
}

/**
 * A refusal as stored: the event with its sensitive fields sealed like a stored event's, and raw
 * bytes (which could not be parsed, so nobody can say where PII sits in them) sealed whole.
 *
 * @example
 * await insertFailedEvents(sql, rows.map((r) => sealFailure(pii, r)));
 */
export function sealFailure(pii: Pick<Pii, 'sealPayload' | 'sealBytes'>, row: FailedEventRow): FailedEventRow {
  let event = row.event;
  if (event !== null) {
    const parsed = JSON.parse(event) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      event = JSON.stringify(pii.sealPayload(parsed as JsonObject));
    }
  }
  const raw = row.raw ? Buffer.from(pii.sealBytes(row.raw)) : null;
  // V8's JSON.parse messages quote the start of the body: keep the reason, not the quote.
  const reason =
    row.code === 'invalid_json'
      ? row.reason.replace(/"[\s\S]*"(\.\.\.)?/, '(the quoted body is kept sealed)')
      : row.reason;
  return { ...row, event, raw, reason };
}

/**
 * A refused payload (the whole body), keeping the raw bytes that were read.
 *
 * @example
 * failedPayload(info, null, 400, 'invalid_json', 'request body is not valid JSON', { bytes, size });
 */
export function failedPayload(
  info: RequestInfo,
  sourceId: string | null,
  status: number,
  code: string,
  reason: string,
  raw: { bytes: Uint8Array; size: number } | null,
): FailedEventRow {
  return {
    sourceId,
    status,
    code,
    // Reasons quote client input (V8's JSON.parse messages quote the body).
    reason: storableText(reason),
    event: null,
    raw: raw?.bytes ?? null,
    rawBytes: raw?.size ?? null,
    request: JSON.stringify(info),
  };
}

/**
 * A refused event inside an otherwise readable body. Events jsonb cannot hold (NUL bytes, broken
 * surrogates) are kept as raw JSON text instead.
 *
 * @example
 * failedEvent(info, source.id, 400, 'invalid_event', 'batch[3].timestamp: not an ISO-8601 date', event);
 */
export function failedEvent(
  info: RequestInfo,
  sourceId: string,
  status: number,
  code: string,
  reason: string,
  event: unknown,
): FailedEventRow {
  let text: string;
  try {
    text = JSON.stringify(event) ?? 'null';
  } catch {
    // JSON.stringify recurses; an event nested thousands deep was refused by the iterative walk.
    text = '"(not serializable: nested too deeply)"';
  }
  // JSON.stringify escapes NUL and lone surrogates, which jsonb still refuses: keep those as raw bytes.
  const asJsonb = !/\\u0000|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i.test(
    text,
  );
  const bytes = Buffer.from(text);
  return {
    sourceId,
    status,
    code,
    reason: storableText(reason),
    event: asJsonb ? text : null,
    raw: asJsonb ? null : bytes,
    rawBytes: bytes.byteLength,
    request: JSON.stringify(info),
  };
}
