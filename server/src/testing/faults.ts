import type { Sql } from '../db/index.ts';

/**
 * Makes the next hand-off to `queue` fail, as a process killed between a change and its hand-off would:
 * a trigger on pg-boss's job table raises on the first insert of a job for that queue (counted by a
 * sequence, which does not roll back with the failed insert), and lets every later one through.
 * Returns how many inserts were attempted so far, to check the fault was met. Postgres only (PGlite
 * has no second session to set it up from outside the server's transaction).
 *
 * @example
 * const attempts = await failNextHandOff(cairn.sql, 'fanout');
 * // ... do what hands off to fan-out: it fails once, its retry goes through
 * expect(await attempts()).toBeGreaterThanOrEqual(2);
 */
export async function failNextHandOff(sql: Sql, queue: string): Promise<() => Promise<number>> {
  if (!/^[a-z.]+$/.test(queue)) throw new Error(`not a queue name: ${queue}`);
  await sql.unsafe(`
    CREATE SEQUENCE test_handoff_attempts;
    CREATE FUNCTION test_fail_first_handoff() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.name = '${queue}' AND nextval('test_handoff_attempts') = 1 THEN
        RAISE EXCEPTION 'simulated crash between a change and its hand-off';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_fail_first_handoff BEFORE INSERT ON pgboss.job
      FOR EACH ROW EXECUTE FUNCTION test_fail_first_handoff();`);
  return async () => {
    const [row] = await sql<{ n: string }[]>`SELECT last_value::text AS n FROM test_handoff_attempts`;
    return Number(row!.n);
  };
}
