import type { Sql } from '../db/index.ts';
import { type UnsubscribeClaim, verifyUnsubscribe } from '../pipeline/deliver/unsubscribe.ts';
import { resolveSecret } from '../secret.ts';

/**
 * What an unsubscribe token of a running server says (tokens are opaque: the claim is sealed with the
 * server secret, `CAIRN_SECRET` or the one generated in its database). Null when it does not open.
 *
 * @example
 * const claim = await openUnsubscribeToken(cairn.sql, link.slice(link.indexOf('/u/') + 3));
 */
export async function openUnsubscribeToken(sql: Sql, token: string, secret?: string): Promise<UnsubscribeClaim | null> {
  return verifyUnsubscribe(await resolveSecret(sql, { secret } as Parameters<typeof resolveSecret>[1]), token);
}
