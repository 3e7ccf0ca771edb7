import type { IssueCouponEffect, JsonObject, JsonValue } from '@cairn/core';
import type { Sql, Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import { eventsByIds } from './queries.ts';

// Coupon pools in the runner (migration 0022): an `issue_coupon` node's code is taken in the transaction
// that feeds it back to the run (effects.ts, under the person's lock, only while the run awaits the key),
// keyed by the effect key: a replay finds the code it issued, never a second one. Events of a pool's
// redeem event redeem the code they name; the timer expires codes past their expiry.

/** What issuing answers the engine: the code (null: the pool has none left) and its expiry. */
export interface IssuedCoupon {
  code: string | null;
  expiresAt?: string;
}

const DAY = 86_400_000;

/** The result fed back to the run (effects.ts's CallResult). */
type CallResult = { ok: true; output?: JsonValue } | { ok: false; error: string };

/**
 * Issues one available code of the effect's pool to the person, once per effect key (the code issued
 * under the key before, if any), in the caller's transaction: the next available code in import order,
 * taken `FOR UPDATE SKIP LOCKED` so concurrent runs never get the same one. Its expiry: the pool's
 * days after now and/or its fixed date, whichever is sooner. A pool deleted since is a permanent failure.
 *
 * @example
 * const result = await issueCoupon(tx, effect, profileId, now); // { ok: true, output: { code: 'SPRING-1' } }
 */
export async function issueCoupon(
  tx: Tx,
  effect: IssueCouponEffect,
  profileId: string,
  now: number,
): Promise<CallResult> {
  const before = await tx<{ code: string; expiresAt: Date | null }[]>`
    SELECT code, expires_at AS "expiresAt" FROM coupons WHERE issued_key = ${effect.key}`;
  if (before[0]) return { ok: true, output: view(before[0]) as never };
  const [pool] = await tx<{ days: number | null; at: Date | null }[]>`
    SELECT expires_after_days AS days, expires_at AS at FROM coupon_pools WHERE key = ${effect.pool}`;
  if (!pool) return { ok: false, error: `coupon pool ${effect.pool} no longer exists` };
  const ends = [pool.days ? now + pool.days * DAY : null, pool.at ? pool.at.getTime() : null].filter(
    (x): x is number => x !== null,
  );
  const expires = ends.length ? new Date(Math.min(...ends)) : null;
  const taken = await tx<{ code: string; expiresAt: Date | null }[]>`
    UPDATE coupons SET status = 'issued', issued_to = ${profileId}::uuid, issued_key = ${effect.key},
      issued_at = ${new Date(now)}, expires_at = ${expires}
    WHERE id = (
      SELECT id FROM coupons
      WHERE pool = ${effect.pool} AND status = 'available'
        AND (${pool.at}::timestamptz IS NULL OR ${pool.at} > ${new Date(now)})
      ORDER BY id
      LIMIT 1
      FOR UPDATE SKIP LOCKED
    )
    RETURNING code, expires_at AS "expiresAt"`;
  return { ok: true, output: (taken[0] ? view(taken[0]) : { code: null }) as never };
}

// The value at a dot path of an event (`properties.coupon`).
function atPath(root: unknown, path: string): unknown {
  let at = root;
  for (const k of path.split('.')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[k];
  }
  return at;
}

const view = (c: { code: string; expiresAt: Date | null }): IssuedCoupon =>
  c.expiresAt ? { code: c.code, expiresAt: new Date(c.expiresAt).toISOString() } : { code: c.code };

/**
 * Redeems the codes that events name: an event whose name is a pool's `redeem_event` and whose value at
 * the pool's `code_path` is an issued code of that pool marks it redeemed (by that event and person, at
 * the event's time). Idempotent: a code already redeemed, expired or never issued is left as it is.
 * Returns how many codes were redeemed.
 *
 * @example
 * await redeemCoupons(sql, pii, eventIds);
 */
export async function redeemCoupons(sql: Sql, pii: Pick<Pii, 'openPayload'>, ids: readonly string[]): Promise<number> {
  if (!ids.length) return 0;
  const pools = await sql<{ key: string; event: string; path: string }[]>`
    SELECT key, redeem_event AS event, code_path AS path FROM coupon_pools WHERE redeem_event IS NOT NULL`;
  if (!pools.length) return 0;
  const names = new Set(pools.map((p) => p.event));
  const light = (await eventsByIds(sql, ids, false)).filter((e) => e.name !== null && names.has(e.name));
  if (!light.length) return 0;
  const events = await eventsByIds(
    sql,
    light.map((e) => e.id),
    true,
  );
  let redeemed = 0;
  for (const e of events) {
    const payload = pii.openPayload(e.payload as JsonObject);
    for (const p of pools.filter((x) => x.event === e.name)) {
      const code = atPath(payload, p.path);
      if (typeof code !== 'string' && typeof code !== 'number') continue;
      const done = await sql`
        UPDATE coupons SET status = 'redeemed', redeemed_at = ${new Date(e.timestamp)},
          redeemed_event = ${e.id}::bigint, redeemed_by = ${e.profileId}::uuid
        WHERE pool = ${p.key} AND code = ${String(code)} AND status = 'issued'`;
      redeemed += done.count;
    }
  }
  return redeemed;
}

/**
 * Expires codes whose expiry has passed (available or issued, not redeemed), at most `limit` per call.
 * Returns how many.
 *
 * @example
 * while ((await expireCoupons(sql, new Date(), 500)) === 500);
 */
export async function expireCoupons(sql: Sql, now: Date, limit: number): Promise<number> {
  const done = await sql`
    UPDATE coupons SET status = 'expired'
    WHERE id IN (
      SELECT id FROM coupons
      WHERE status IN ('available', 'issued') AND expires_at IS NOT NULL AND expires_at <= ${now}
      ORDER BY expires_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )`;
  return done.count;
}
