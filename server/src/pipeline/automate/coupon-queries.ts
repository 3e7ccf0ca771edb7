import type { Tx } from '../../db/index.ts';

// The admin side of coupon pools (migration 0022): pools, importing codes, counts by status.

/** A pool as stored. */
export interface CouponPoolRow {
  key: string;
  name: string;
  expiresAfterDays: number | null;
  expiresAt: Date | null;
  redeemEvent: string | null;
  codePath: string;
  createdAt: Date;
  updatedAt: Date;
}

/** What a pool is made of (everything but its key and times). */
export type CouponPoolRecord = Pick<
  CouponPoolRow,
  'name' | 'expiresAfterDays' | 'expiresAt' | 'redeemEvent' | 'codePath'
>;

/** Codes of a pool by status. */
export interface CouponStats {
  available: number;
  issued: number;
  redeemed: number;
  expired: number;
}

const COLUMNS = (sql: Tx) => sql`key, name, expires_after_days AS "expiresAfterDays", expires_at AS "expiresAt",
  redeem_event AS "redeemEvent", code_path AS "codePath", created_at AS "createdAt", updated_at AS "updatedAt"`;

/**
 * Every pool, by key.
 *
 * @example
 * const pools = await listCouponPools(sql);
 */
export async function listCouponPools(sql: Tx): Promise<CouponPoolRow[]> {
  return sql<CouponPoolRow[]>`SELECT ${COLUMNS(sql)} FROM coupon_pools ORDER BY key`;
}

/**
 * One pool.
 *
 * @example
 * const pool = await getCouponPool(sql, 'spring');
 */
export async function getCouponPool(sql: Tx, key: string): Promise<CouponPoolRow | undefined> {
  const [row] = await sql<CouponPoolRow[]>`SELECT ${COLUMNS(sql)} FROM coupon_pools WHERE key = ${key}`;
  return row;
}

/**
 * The keys of every pool (what flows may name).
 *
 * @example
 * validateFlow(def, { couponPools: await couponPoolKeys(sql) });
 */
export async function couponPoolKeys(sql: Tx): Promise<string[]> {
  return (await sql<{ key: string }[]>`SELECT key FROM coupon_pools ORDER BY key`).map((r) => r.key);
}

/**
 * Stores a new pool; false when the key is taken.
 *
 * @example
 * await insertCouponPool(sql, 'spring', { name: 'Spring', expiresAfterDays: 14, expiresAt: null, redeemEvent: 'Order Completed', codePath: 'properties.coupon' });
 */
export async function insertCouponPool(sql: Tx, key: string, p: CouponPoolRecord): Promise<boolean> {
  const rows = await sql`
    INSERT INTO coupon_pools (key, name, expires_after_days, expires_at, redeem_event, code_path)
    VALUES (${key}, ${p.name}, ${p.expiresAfterDays}, ${p.expiresAt}, ${p.redeemEvent}, ${p.codePath})
    ON CONFLICT (key) DO NOTHING RETURNING key`;
  return rows.length === 1;
}

/**
 * Replaces a pool's fields; the codes not yet issued take its new fixed expiry (issued ones keep theirs).
 *
 * @example
 * await updateCouponPool(tx, 'spring', { ...record, expiresAt: new Date('2026-06-01') }, new Date());
 */
export async function updateCouponPool(sql: Tx, key: string, p: CouponPoolRecord, now: Date): Promise<void> {
  await sql`
    UPDATE coupon_pools SET name = ${p.name}, expires_after_days = ${p.expiresAfterDays}, expires_at = ${p.expiresAt},
      redeem_event = ${p.redeemEvent}, code_path = ${p.codePath}, updated_at = ${now}
    WHERE key = ${key}`;
  await sql`UPDATE coupons SET expires_at = ${p.expiresAt} WHERE pool = ${key} AND status = 'available'`;
}

/**
 * Deletes a pool and its codes.
 *
 * @example
 * await deleteCouponPool(sql, 'spring');
 */
export async function deleteCouponPool(sql: Tx, key: string): Promise<void> {
  await sql`DELETE FROM coupon_pools WHERE key = ${key}`;
}

/**
 * A flow whose working copy or live version has an `issue_coupon` node of the pool, if any.
 *
 * @example
 * if (await flowNamingPool(sql, 'spring')) throw conflict;
 */
export async function flowNamingPool(sql: Tx, key: string): Promise<string | undefined> {
  const node = sql.json({ nodes: [{ type: 'issue_coupon', pool: key }] });
  const [user] = await sql<{ id: string }[]>`
    SELECT f.id FROM flows f
    WHERE f.definition @> ${node}
      OR EXISTS (SELECT 1 FROM flow_versions v WHERE v.flow_id = f.id AND v.version = f.version
                 AND v.definition @> ${node})
    LIMIT 1`;
  return user?.id;
}

/**
 * Imports codes into a pool: each new code once (a code already in the pool, or twice in the list, is a
 * duplicate), available, with the pool's fixed expiry. Returns the counts.
 *
 * @example
 * await importCodes(tx, 'spring', ['A1', 'A2', 'A1']); // { imported: 2, duplicate: 1 }
 */
export async function importCodes(
  sql: Tx,
  key: string,
  codes: readonly string[],
): Promise<{ imported: number; duplicate: number }> {
  const unique = [...new Set(codes)];
  let imported = 0;
  for (let i = 0; i < unique.length; i += 5000) {
    const chunk = unique.slice(i, i + 5000);
    const rows = await sql`
      INSERT INTO coupons (pool, code, expires_at)
      SELECT ${key}, c, (SELECT expires_at FROM coupon_pools WHERE key = ${key}) FROM unnest(${chunk}::text[]) AS c
      ON CONFLICT (pool, code) DO NOTHING`;
    imported += rows.count;
  }
  return { imported, duplicate: codes.length - imported };
}

/**
 * A pool's codes by status.
 *
 * @example
 * await couponStats(sql, 'spring'); // { available: 1, issued: 2, redeemed: 1, expired: 0 }
 */
export async function couponStats(sql: Tx, key: string): Promise<CouponStats> {
  const stats: CouponStats = { available: 0, issued: 0, redeemed: 0, expired: 0 };
  const rows = await sql<{ status: keyof CouponStats; n: number }[]>`
    SELECT status, count(*)::int AS n FROM coupons WHERE pool = ${key} GROUP BY status`;
  for (const r of rows) stats[r.status] = r.n;
  return stats;
}

/** A person's coupon, as their points/coupons view shows it. */
export interface PersonCoupon {
  pool: string;
  code: string;
  status: string;
  issuedAt: Date | null;
  redeemedAt: Date | null;
  expiresAt: Date | null;
}

/**
 * The coupons issued to a person, newest first.
 *
 * @example
 * const coupons = await couponsOf(sql, profileId);
 */
export async function couponsOf(sql: Tx, profileId: string): Promise<PersonCoupon[]> {
  return sql<PersonCoupon[]>`
    SELECT pool, code, status, issued_at AS "issuedAt", redeemed_at AS "redeemedAt", expires_at AS "expiresAt"
    FROM coupons WHERE issued_to = ${profileId}::uuid ORDER BY issued_at DESC, id DESC`;
}
