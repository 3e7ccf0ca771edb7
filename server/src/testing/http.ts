import { TEST_ADMIN_KEY } from './server.ts';

/** A response of the admin API as tests read it: status, parsed JSON body (null when not JSON) and raw text. */
export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests check the shape with their assertions
  body: any;
  text: string;
}

/**
 * The `Authorization` header of the tracking API for a write key (HTTP Basic, key as user name).
 *
 * @example
 * await fetch(`${url}/v1/batch`, { method: 'POST', headers: { authorization: basicAuth(key) }, body });
 */
export function basicAuth(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

/**
 * A caller of a server's admin API (`/api` + path) with the test admin key.
 *
 * @example
 * const api = adminApi(cairn.url);
 * const { status, body } = await api('/audiences', { method: 'POST', body: JSON.stringify(audience) });
 */
export function adminApi(
  baseUrl: string,
  key = TEST_ADMIN_KEY,
): (path: string, init?: RequestInit) => Promise<ApiAnswer> {
  return async (path, init = {}) => {
    const res = await fetch(`${baseUrl}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
    });
    const text = res.status === 204 ? '' : await res.text();
    let body: ApiAnswer['body'] = null;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body, text };
  };
}

/**
 * Polls `fn` until it returns something truthy (returned), or throws after `tries` polls `intervalMs` apart.
 *
 * @example
 * const id = await until('the profile', async () => (await api(`/profiles?userId=u1`)).body.data[0]?.id);
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  { tries = 300, intervalMs = 50 }: { tries?: number; intervalMs?: number } = {},
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((res) => setTimeout(res, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}
