import type { Readable, Transform } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { LIMITS } from '@cairn/core';
import { DomainError } from '../../infra/errors.ts';

/** A request body read under the size limit, kept raw so a refusal can record what was sent. */
export interface RawBody {
  bytes: Uint8Array;
  /** Bytes the client sent (after decompression), which may exceed `bytes` when cut off. */
  size: number;
}

/**
 * Why a body could not be turned into JSON: a {@link DomainError} (the error handler renders it) that
 * also carries what was read so far, never sent to the client but recorded in failed_events by the
 * tracking routes, which tell it apart from other refusals by this class.
 */
export class BodyError extends DomainError {
  constructor(
    status: 400 | 413 | 415,
    code: string,
    message: string,
    readonly raw: RawBody | null,
  ) {
    super(status, code, message);
  }
}

const JSON_TYPES = /^(application\/(json|[\w.+-]+\+json)|text\/plain)$/i;
// decode() without { stream: true } keeps no state between calls, so one decoder serves every request.
const UTF8 = new TextDecoder('utf-8', { fatal: true });
// RudderStack's Node SDK labels its gzipped JSON as a form; such a body is read if it is JSON.
const FORM_TYPE = 'application/x-www-form-urlencoded';

/**
 * Reads, decompresses (gzip/deflate), size-checks, UTF-8-decodes and parses a tracking request body.
 * `text/plain` is accepted because `navigator.sendBeacon` and CORS-simple browser requests send it.
 *
 * @example
 * const { json, raw } = await readJsonBody(c.req.raw, c.env?.incoming);
 */
export async function readJsonBody(req: Request, incoming?: Readable, maxBytes: number = LIMITS.maxRequestBytes) {
  const type = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const form = type === FORM_TYPE;
  if (type && !form && !JSON_TYPES.test(type)) {
    throw new BodyError(
      415,
      'unsupported_media_type',
      `content-type ${type} is not supported; send application/json`,
      null,
    );
  }
  const raw = await readLimited(req, maxBytes, incoming);
  let text: string;
  try {
    text = UTF8.decode(raw.bytes);
  } catch {
    throw new BodyError(400, 'invalid_utf8', 'request body is not valid UTF-8', raw);
  }
  if (text.trim() === '') throw new BodyError(400, 'empty_body', 'request body is empty', raw);
  try {
    return { json: JSON.parse(text) as unknown, raw };
  } catch (err) {
    if (form) {
      throw new BodyError(
        415,
        'unsupported_media_type',
        `content-type ${type} is not supported; send application/json`,
        raw,
      );
    }
    throw new BodyError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`, raw);
  }
}

// What is kept of an oversized body for failed_events: enough to see what it was.
const KEEP_OF_OVERSIZED = 64 * 1024;

async function readLimited(req: Request, maxBytes: number, incoming?: Readable): Promise<RawBody> {
  const declared = Number(req.headers.get('content-length') ?? Number.NaN);
  const tooLarge = (size: number, bytes: Uint8Array) =>
    new BodyError(413, 'payload_too_large', `request body is larger than ${maxBytes} bytes`, { bytes, size });
  if (declared > maxBytes) throw tooLarge(declared, new Uint8Array());
  const encoding = (req.headers.get('content-encoding') ?? '').trim().toLowerCase();
  // Node's own request stream when the server gives it: converting it to a Web stream first costs a
  // measurable share of a single-event request (bench:ingest profile), and so does an async iterator.
  if (incoming && (encoding === '' || encoding === 'identity')) {
    // A small body usually arrives with its headers: once Node has parsed the whole request and nothing
    // has been read yet, it is all in the stream's buffer, and one read() takes it without listeners.
    const complete = (incoming as { complete?: boolean }).complete === true; // node:http's IncomingMessage
    if (complete && !incoming.readableDidRead && incoming.readableFlowing !== true) {
      const all = (incoming.read() as Buffer | null) ?? new Uint8Array();
      if (all.byteLength > maxBytes) throw tooLarge(all.byteLength, all.subarray(0, KEEP_OF_OVERSIZED));
      return { bytes: all, size: all.byteLength };
    }
    return readNode(incoming, maxBytes, tooLarge);
  }
  const source = incoming ? decodeNode(incoming, encoding) : req.body ? decode(req.body, encoding) : null;
  if (!source) return { bytes: new Uint8Array(), size: 0 };
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const value of source as AsyncIterable<Uint8Array>) {
      size += value.byteLength;
      if (size > maxBytes) throw tooLarge(size, concat(chunks, KEEP_OF_OVERSIZED));
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof BodyError) throw err;
    throw new BodyError(400, 'invalid_encoding', 'request body could not be decompressed', {
      bytes: concat(chunks, KEEP_OF_OVERSIZED),
      size,
    });
  }
  return { bytes: concat(chunks, Number.POSITIVE_INFINITY), size };
}

// An uncompressed body straight from Node's stream events: the common case (single events are rarely
// gzipped), where an async iterator's promises and end-of-stream watcher cost more than the read.
function readNode(
  incoming: Readable,
  maxBytes: number,
  tooLarge: (size: number, bytes: Uint8Array) => BodyError,
): Promise<RawBody> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const done = () => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const onData = (value: Uint8Array) => {
      size += value.byteLength;
      if (size > maxBytes) {
        // Stop reading without destroying the socket (see decodeNode): Node drains or closes it after the 413.
        done();
        incoming.pause();
        reject(tooLarge(size, concat(chunks, KEEP_OF_OVERSIZED)));
        return;
      }
      chunks.push(value);
    };
    const onEnd = () => {
      done();
      resolve({ bytes: concat(chunks, Number.POSITIVE_INFINITY), size });
    };
    const fail = () => {
      done();
      reject(
        new BodyError(400, 'invalid_encoding', 'request body could not be decompressed', {
          bytes: concat(chunks, KEEP_OF_OVERSIZED),
          size,
        }),
      );
    };
    const onError = fail;
    // A client gone before the end of its body: the same refusal as the iterator's premature close.
    const onClose = () => incoming.readableEnded || fail();
    if (incoming.readableEnded) return resolve({ bytes: new Uint8Array(), size: 0 });
    if (incoming.destroyed) return fail();
    incoming.on('data', onData);
    incoming.once('end', onEnd);
    incoming.once('error', onError);
    incoming.once('close', onClose);
  });
}

// Refusing an oversized body must not destroy the socket, or the client never reads the 413: stop
// reading (destroyOnReturn false) and let Node drain or close the connection after the response.
function decodeNode(incoming: Readable, encoding: string): AsyncIterable<Uint8Array> {
  if (encoding === '' || encoding === 'identity') return incoming.iterator({ destroyOnReturn: false });
  let inflate: Transform;
  if (encoding === 'gzip' || encoding === 'x-gzip') inflate = createGunzip();
  else if (encoding === 'deflate') inflate = createInflate();
  else
    throw new BodyError(415, 'unsupported_encoding', `content-encoding ${encoding} is not supported; use gzip`, null);
  // pipe() does not forward a client's abort; without this the read would wait forever.
  incoming.once('error', (err) => inflate.destroy(err));
  incoming.once('close', () => incoming.readableEnded || inflate.destroy(new Error('request aborted')));
  return incoming.pipe(inflate);
}

function decode(body: ReadableStream<Uint8Array>, encoding: string): ReadableStream<Uint8Array> {
  if (encoding === '' || encoding === 'identity') return body;
  if (encoding === 'gzip' || encoding === 'x-gzip') return body.pipeThrough(new DecompressionStream('gzip'));
  if (encoding === 'deflate') return body.pipeThrough(new DecompressionStream('deflate'));
  throw new BodyError(415, 'unsupported_encoding', `content-encoding ${encoding} is not supported; use gzip`, null);
}

function concat(chunks: Uint8Array[], max: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.byteLength <= max) return chunks[0]!;
  const total = Math.min(
    max,
    chunks.reduce((n, c) => n + c.byteLength, 0),
  );
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    if (at >= total) break;
    const part = c.subarray(0, total - at);
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
