import type { Tx } from '../../db/index.ts';

/**
 * Marks events handed over by ingest as processed. Until identity resolution owns this stage, this
 * is all it does; idempotent, so a retried job is harmless.
 *
 * @example
 * await markProcessed(sql, ['1', '2']);
 */
export async function markProcessed(sql: Tx, ids: readonly string[]): Promise<number> {
  const result = await sql`
    UPDATE events
    SET processed_at = now()
    WHERE id = ANY(${ids}::bigint[])
      AND processed_at IS NULL`;
  return result.count;
}
