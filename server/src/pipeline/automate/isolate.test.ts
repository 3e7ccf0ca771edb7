import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  movableClock,
  type Receiver,
  until,
} from '../../testing/index.ts';
import { transient } from './isolate.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

describe('transient', () => {
  it('retries what says the database is away or busy, isolates what is one run’s', () => {
    expect(transient({ code: 'ECONNREFUSED' })).toBe(true);
    expect(transient({ code: 'CONNECTION_CLOSED' })).toBe(true);
    expect(transient({ severity: 'FATAL', code: '57P01' })).toBe(true);
    expect(transient({ severity: 'ERROR', code: '40P01' })).toBe(true);
    expect(transient({ severity: 'ERROR', code: '22P05' })).toBe(false);
    expect(transient(new TypeError('x is undefined'))).toBe(false);
  });
});

// Three people wait at the same wait; the step of one of them cannot be committed (a trigger refuses its
// row, as Postgres would refuse a value of its data): it fails alone, with the reason, and the two others
// get their message — the timer does not retry the whole batch forever.
describeOnDatabases('a due run whose step cannot be committed, on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let flowId: string;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock();

  beforeAll(async () => {
    h = await flowHarness('isolate.test.ts', mode, { clock });
    const { receiver, destinationId } = await h.webhook();
    hook = receiver;
    flowId = await h.publish({
      version: 1,
      name: `Later ${tag}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'later', type: 'wait', duration: { hours: 1 } },
        { id: 'hello', type: 'send', destination: destinationId, message: { body: 'Hello' } },
      ],
      edges: [{ from: 'later', to: 'hello', on: 'next' }],
    });
  });
  afterAll(() => h?.close());

  it('fails that run alone, journaled with the error, and steps the others', async () => {
    const users = ['a', 'b', 'c'].map((x) => `${x}-${tag}`);
    await h.send(...users.map((userId) => ({ type: 'track', userId, event: 'Signed Up' })));
    const runs = await until('three waiting runs', async () => {
      const rows = await h.cairn.sql<{ id: string; profileId: string }[]>`
        SELECT id, profile_id AS "profileId" FROM flow_runs WHERE flow_id = ${flowId} AND status = 'waiting'`;
      return rows.length === 3 ? rows : undefined;
    });
    const poisoned = runs[1]!;
    await h.cairn.sql.unsafe(`
      CREATE OR REPLACE FUNCTION poison_run() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.id = '${poisoned.id}' AND NEW.status <> 'failed' THEN
          RAISE EXCEPTION 'value refused for run %', NEW.id USING ERRCODE = '22023';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER poison BEFORE UPDATE ON flow_runs FOR EACH ROW EXECUTE FUNCTION poison_run();`);

    clock.advance(3_600_000 + 1000);
    const ended = await until('every run ended', async () => {
      const rows = await h.cairn.sql<{ id: string; status: string; reason: string | null }[]>`
        SELECT id, status, state->>'reason' AS reason FROM flow_runs WHERE flow_id = ${flowId}`;
      return rows.every((r) => r.status !== 'waiting') ? rows : undefined;
    });
    expect(ended.find((r) => r.id === poisoned.id)).toMatchObject({
      status: 'failed',
      reason: expect.stringContaining(`its step could not be committed: value refused for run ${poisoned.id}`),
    });
    expect(ended.filter((r) => r.id !== poisoned.id).map((r) => r.status)).toEqual(['completed', 'completed']);
    await until('two messages', async () =>
      hook.accepted.filter((r) => r.body?.message).length === 2 ? true : undefined,
    );
    const journal = (await h.runsOf(flowId, poisoned.profileId))[0].steps as Any[];
    expect(journal.at(-1)).toMatchObject({ type: 'end', outcome: 'failed', node: 'later' });
    expect(hook.accepted.filter((r) => r.body?.message).map((r) => r.body.profile.id)).not.toContain(
      poisoned.profileId,
    );
  });
});
