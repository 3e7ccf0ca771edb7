// A delivery's attempt count includes a send whose outcome was never recorded. A process killed between
// a plugin's send and the ledger write re-sends the batch later (at least once); that first send reached
// the receiver, so the ledger must say 2 attempts, not 1. Simulated in process as failNextHandOff does:
// a trigger makes the first outcome write of the destination fail, after the receiver has answered, and
// pg-boss retries the job.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnPostgres, type FlowHarness, flowHarness, until } from '../../testing/index.ts';

// Postgres only: the trigger is set up from a second session, which PGlite does not have.
describeOnPostgres('delivery attempts (postgres)', (mode) => {
  let h: FlowHarness;

  beforeAll(async () => {
    h = await flowHarness('pipeline/deliver/attempts.test.ts', mode, {
      env: { CAIRN_DELIVERY_RETRY_DELAY_S: '1', CAIRN_DELIVERY_RETRY_MAX_S: '1' },
    });
  });
  afterAll(() => h?.close());

  it('counts the send whose outcome write was lost: re-sent once, attempts = 2, the plugin told attempt 2', async () => {
    const { receiver: hook, destinationId: id } = await h.webhook();
    expect(id).toMatch(/^[\w-]+$/);
    // The first write of an outcome for this destination fails, as if the process had died before it;
    // the sequence counts the writes tried (it does not roll back with the failed statement).
    await h.cairn.sql.unsafe(`
      CREATE SEQUENCE test_outcome_writes;
      CREATE FUNCTION test_lose_first_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.destination_id = '${id}' AND NEW.status = 'delivered' AND nextval('test_outcome_writes') = 1 THEN
          RAISE EXCEPTION 'simulated crash between a send and its outcome write';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_lose_first_outcome BEFORE UPDATE ON deliveries
        FOR EACH ROW EXECUTE FUNCTION test_lose_first_outcome();`);

    const messageId = `lost-${randomUUID()}`;
    await h.send({ type: 'track', userId: 'u-lost', event: 'Paid', messageId });
    const key = `${messageId}:${id}`;
    const [row] = await until(
      'the delivery recorded as delivered',
      async () => {
        const rows = (await h.api(`/destinations/${id}/deliveries?status=delivered`)).body.data as {
          idempotencyKey: string;
          attempts: number;
        }[];
        return rows.length ? rows : undefined;
      },
      { tries: 600 },
    );
    const [writes] = await h.cairn.sql<{ n: string }[]>`SELECT last_value::text AS n FROM test_outcome_writes`;
    expect(Number(writes!.n), 'the lost outcome write happened, then the one that stuck').toBe(2);
    const sends = hook.accepted.filter((r) => r.headers['idempotency-key'] === key);
    expect(sends).toHaveLength(2);
    expect(row).toMatchObject({ idempotencyKey: key, attempts: 2 });
    expect(sends.map((r) => (r.body as { attempt?: number }).attempt)).toEqual([1, 2]);
  });
});
