// Every call the console makes goes through here: the admin API on this server, with the session
// cookie (never a key in the browser), JSON in and out, and the API's error body turned into an Error.

/** An error answer of the admin API: its status, code and message (and per-field details). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Who is signed in (GET /api/me). */
export interface Me {
  kind: string;
  role: 'admin' | 'operator' | 'analyst';
  permissions: string[];
  user: { id: string; email: string; name: string } | null;
}

/**
 * Calls the admin API. `path` starts after `/api` (`/profiles?email=…`).
 *
 * @example
 * const page = await api<{ data: Profile[] }>('/profiles?email=ada@example.com');
 * await api('/tags', { method: 'POST', body: { name: 'vip', rule } });
 */
export async function api<T = unknown>(
  path: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  const res = await fetch(`/api${path}`, {
    method: init.method ?? 'GET',
    credentials: 'same-origin',
    headers: init.body !== undefined ? { 'content-type': 'application/json' } : {},
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    signal: init.signal,
  });
  const text = await res.text();
  const body = text ? safeJson(text) : undefined;
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? res.statusText, err?.details);
  }
  return body as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Query string from an object, leaving out empty values.
 *
 * @example
 * qs({ type: 'track', event: '' }); // '?type=track'
 */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}
