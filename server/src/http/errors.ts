import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { DomainError } from '../infra/errors.ts';
import type { Logger } from '../log.ts';

/** The JSON body of every error response: `{ error: { code, message, details? } }`. */
export interface ErrorBody {
  /** `requestId` comes with a 500 only: the log line holding the cause names it. */
  error: { code: string; message: string; details?: unknown; requestId?: string };
}

interface ApiErrorCause {
  code: string;
  details?: unknown;
  headers?: Record<string, string>;
}

/**
 * An HTTP error with a stable machine-readable code. Thrown anywhere, rendered by {@link onError}.
 *
 * @example
 * throw apiError(413, 'payload_too_large', 'request body exceeds 512000 bytes');
 */
export function apiError(
  status: ContentfulStatusCode,
  code: string,
  message: string,
  details?: unknown,
  headers?: Record<string, string>,
): HTTPException {
  return new HTTPException(status, { message, cause: { code, details, headers } satisfies ApiErrorCause });
}

/**
 * The one error handler: client errors (`apiError`, and the `DomainError` pipeline code throws without
 * knowing HTTP) keep their status, code and details; anything else is a 500 with the request id and no
 * stack trace or internal message in the response (both go to the log).
 *
 * @example
 * app.onError(onError(log));
 */
export function onError(log: Logger) {
  return function handleError(err: Error, c: Context): Response {
    if (err instanceof HTTPException) {
      const cause = (err.cause ?? {}) as Partial<ApiErrorCause>;
      const code = cause.code ?? defaultCode(err.status);
      const body: ErrorBody = { error: { code, message: err.message || code } };
      if (cause.details !== undefined) body.error.details = cause.details;
      for (const [k, v] of Object.entries(cause.headers ?? {})) c.header(k, v);
      return c.json(body, err.status as ContentfulStatusCode);
    }
    if (err instanceof DomainError) {
      const body: ErrorBody = { error: { code: err.code, message: err.message || err.code } };
      if (err.details !== undefined) body.error.details = err.details;
      return c.json(body, err.status);
    }
    // The stack and the message stay in the log, under the request id the client is given to quote.
    const requestId = (c.get('requestId') as string | undefined) ?? randomUUID();
    // The route's pattern, never the path: a path can carry an identity (PUT /api/profiles/by/email/…).
    log.error(`${c.req.method} ${c.req.routePath || 'unmatched route'} failed (request ${requestId})`, err);
    const body: ErrorBody = { error: { code: 'internal', message: 'internal server error', requestId } };
    return c.json(body, 500);
  };
}

function defaultCode(status: number): string {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 413) return 'payload_too_large';
  return status >= 500 ? 'unavailable' : 'bad_request';
}
