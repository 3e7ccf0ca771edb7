import type { Sql } from './db/index.ts';
import { getSource, insertSource, type Source } from './sources/queries.ts';

const DEMO_SOURCE_ID = 'src_demo';

/**
 * On the first start of an empty database, creates the demo source (once, also when two servers
 * start together). Returns the demo source while it exists.
 *
 * @example
 * const demo = await ensureDemoSource(sql);
 */
export async function ensureDemoSource(sql: Sql): Promise<Source | undefined> {
  await sql.begin(async (tx) => {
    const claimed = await tx`
      INSERT INTO settings (key, value)
      VALUES ('demo_source_created', 'true')
      ON CONFLICT (key) DO NOTHING
      RETURNING key`;
    if (claimed.length > 0) await insertSource(tx, { id: DEMO_SOURCE_ID, name: 'Demo shop', allowedOrigins: [] });
  });
  return getSource(sql, DEMO_SOURCE_ID);
}
