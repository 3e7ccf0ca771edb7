/**
 * The statuses a refusal by pipeline code may carry: client errors, and 503 for "try again later".
 * Kept as numbers here so code outside `http/` never imports Hono to say why it refused.
 */
export type DomainStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 429 | 503;

/**
 * A refusal with a stable machine-readable code, thrown by pipeline and admin code that knows nothing
 * about HTTP. The one `app.onError` (http/errors.ts) renders it as the API's error body
 * `{ error: { code, message, details? } }` with `status`, exactly as it renders `apiError(...)`.
 *
 * @example
 * throw new DomainError(404, 'not_found', `no profile ${id}`);
 * throw new DomainError(409, 'conflict', 'tag vip is dynamic', { tag: 'vip' });
 */
export class DomainError extends Error {
  constructor(
    readonly status: DomainStatus,
    readonly code: string,
    message: string,
    /** Sent to the client as `error.details`: never put internals here. */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}
