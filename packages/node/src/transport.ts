import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { LIBRARY } from './message.ts';
import type { ResolvedOptions } from './options.ts';
import { isRetryableStatus, parseRetryAfter } from './retry.ts';

const gzip = promisify(gzipCallback);

/** The outcome of one HTTP attempt. */
export type Attempt =
  | { ok: true; status: number }
  | {
      ok: false;
      retryable: boolean;
      reason: string;
      status?: number;
      retryAfterMs?: number;
      serverError?: unknown;
      cause?: unknown;
    };

function serverErrorOf(text: string): unknown {
  try {
    const body = JSON.parse(text) as { error?: unknown };
    return body?.error ?? body;
  } catch {
    return text === '' ? undefined : text;
  }
}

function describe(status: number, serverError: unknown): string {
  const detail = (serverError as { message?: unknown } | undefined)?.message;
  return typeof detail === 'string' ? `HTTP ${status}: ${detail}` : `HTTP ${status}`;
}

/**
 * POSTs pre-serialised messages as one `{ batch, sentAt }` body. `sentAt` is stamped here, per attempt, so the
 * server's clock-skew correction sees when this request really left. Never throws.
 */
export async function postBatch(options: ResolvedOptions, jsons: readonly string[]): Promise<Attempt> {
  const json = `{"batch":[${jsons.join(',')}],"sentAt":${JSON.stringify(new Date().toISOString())}}`;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: `Basic ${Buffer.from(`${options.writeKey}:`).toString('base64')}`,
    'user-agent': `${LIBRARY.name}/${LIBRARY.version}`,
  };
  try {
    let body: string | Buffer = json;
    if (options.gzip) {
      body = await gzip(json);
      headers['content-encoding'] = 'gzip';
    }
    const send = options.fetch;
    const response = await send(options.endpoint, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(options.timeout),
    });
    // Read the body even on success so the keep-alive connection is released.
    const text = await response.text();
    if (response.ok) return { ok: true, status: response.status };
    const serverError = serverErrorOf(text);
    return {
      ok: false,
      retryable: isRetryableStatus(response.status),
      reason: describe(response.status, serverError),
      status: response.status,
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
      serverError,
    };
  } catch (error) {
    const err = error as { name?: string; message?: string; cause?: { code?: string } } | undefined;
    const code = err?.cause?.code ? ` (${err.cause.code})` : '';
    const reason =
      err?.name === 'TimeoutError'
        ? `timed out after ${options.timeout} ms`
        : `network error: ${err?.message ?? String(error)}${code}`;
    return { ok: false, retryable: true, reason, cause: error };
  }
}
