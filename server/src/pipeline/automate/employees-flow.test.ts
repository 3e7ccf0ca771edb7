import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  adminApi,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  type Receiver,
  sendEvents,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: requests as the receiver got them; checked by the assertions
type Any = any;

// Employees in flows, end to end: leads created through the tracking API get an owner in turn from two
// sales reps (round robin, 2 and 2 over 4 people), then the owner, a second linked employee and the
// supervisor chain above them get a notice through a webhook destination — addressed to each employee,
// with the person's email and phone masked for a 'masked' employee and clear for a 'full' one, once per
// employee. An event naming an employee notifies them and their supervisor; a merge moves the links.
describeOnDatabases('employees in flows on %s', (mode) => {
  let h: FlowHarness;
  let cairn: Cairn;
  let hook: Receiver;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let hookId: string;
  const tag = randomUUID().slice(0, 8);
  const emp = (n: string) => `${n}_${tag}`;
  const post = (path: string, body: unknown, method = 'POST') => api(path, { method, body: JSON.stringify(body) });
  const send = (...events: object[]) => sendEvents(cairn, cairn.demoSource!.writeKey, events);
  const profileOf = (q: string) =>
    until(`the profile of ${q}`, async () => (await api(`/profiles?${q}`)).body?.data?.[0]?.id as string | undefined);
  // The hook gets the people's events too (it is a plain webhook destination): the notices carry a message.
  const notices = (n: number) =>
    until(`${n} notices`, async () => {
      const got = hook.accepted.map((r) => r.body as Any).filter((b) => b.message);
      return got.length >= n ? got : undefined;
    });
  const linksOf = async (profileId: string) =>
    (await api(`/profiles/${profileId}/employees`)).body.data.map((l: { employeeId: string }) => l.employeeId);

  // Publishes directly, or — where flows need a second person's approval — submits, approves with
  // another admin key and publishes.
  const publish = async (definition: object) => {
    const created = await post('/flows', { definition });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    let res = await post(`/flows/${id}/publish`, {});
    if (res.status !== 200 && (await post(`/flows/${id}/submit`, {})).status === 200) {
      const key = await post('/keys', { name: `approver ${tag}`, role: 'admin' });
      const approved = await adminApi(cairn.url, key.body.key)(`/flows/${id}/approve`, { method: 'POST', body: '{}' });
      expect(approved.status, approved.text).toBe(200);
      res = await post(`/flows/${id}/publish`, {});
    }
    expect(res.status, res.text).toBe(200);
    return id;
  };

  beforeAll(async () => {
    h = await flowHarness('employees-flow.test.ts', mode);
    ({ cairn, api } = h);
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    // dora ← carl ← ann, bob (ann and bob report to carl, carl to dora); eve works beside them.
    for (const [n, role, sup] of [
      ['dora', 'masked', null],
      ['carl', 'full', 'dora'],
      ['ann', 'masked', 'carl'],
      ['bob', 'full', 'carl'],
      ['eve', 'masked', null],
    ] as const) {
      const res = await post('/employees', {
        id: emp(n),
        name: n,
        email: `${n}@corp.test`,
        role,
        supervisorId: sup && emp(sup),
      });
      expect(res.status, res.text).toBe(201);
    }
  });
  afterAll(() => h?.close());

  it('assigns owners in turn and notifies linked employees and supervisors, masked per role, once each', async () => {
    await publish({
      version: 1,
      name: `Leads ${tag}`,
      trigger: { type: 'event', event: 'Lead Created' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'owner', type: 'assign_owner', mode: 'round_robin', employees: [emp('ann'), emp('bob')] },
        {
          id: 'tell',
          type: 'notify_employees',
          who: ['linked', 'supervisors'],
          supervisorLevels: 2,
          destination: hookId,
          message: { subject: 'New lead {{ traits.first_name }}', body: '{{ traits.email }} / {{ traits.phone }}' },
        },
      ],
      edges: [{ from: 'owner', to: 'tell', on: 'next' }],
    });
    const people = [1, 2, 3, 4].map((i) => ({
      userId: `lead-${i}-${tag}`,
      traits: { first_name: `P${i}`, email: `p${i}@example.test`, phone: `+4915100000${i}11` },
    }));
    await send(...people.map((p) => ({ type: 'identify', ...p })));
    const ids = await Promise.all(people.map((p) => profileOf(`userId=${p.userId}`)));
    // The first lead has a second employee linked already (Eve), who stays after the new owner.
    expect((await post(`/profiles/${ids[0]}/employees`, { employeeId: emp('eve') })).status).toBe(200);
    await send(...people.map((p) => ({ type: 'track', userId: p.userId, event: 'Lead Created' })));

    const owners = await until('an owner for each lead', async () => {
      const links = await Promise.all(ids.map(linksOf));
      return links.every((l) => l.length >= 1) ? links : undefined;
    });
    const leads: string[] = owners.map((l: string[]) => l[0]!);
    expect(leads.filter((o) => o === emp('ann'))).toHaveLength(2);
    expect(leads.filter((o) => o === emp('bob'))).toHaveLength(2);
    expect(owners[0]).toEqual([leads[0], emp('eve')]);

    // Each lead: owner + carl + dora; the first also Eve (no supervisor). 13 notices.
    const got = await notices(13);
    const keys = got.map((b) => b.idempotencyKey);
    expect(new Set(keys).size).toBe(13);
    for (const [i, p] of people.entries()) {
      const mine = got.filter((b) => b.message.subject === `New lead P${i + 1}`);
      const expected = [leads[i], emp('carl'), emp('dora'), ...(i === 0 ? [emp('eve')] : [])];
      expect(mine.map((b) => b.message.to.id).sort()).toEqual(expected.sort());
      for (const b of mine) {
        const who = b.message.to.id.replace(`_${tag}`, '');
        expect(b.message.to).toMatchObject({ name: who, email: `${who}@corp.test` });
        expect(b.idempotencyKey).toMatch(new RegExp(`^flow:[0-9a-f-]{36}:tell:0:${b.message.to.id}$`));
        // The person's data reaches the employee only through the message.
        expect(b.profile).toBeNull();
        const clear = `${p.traits.email} / ${p.traits.phone}`;
        if (who === 'bob' || who === 'carl') expect(b.message.body).toBe(clear);
        else expect(b.message.body).toBe(`p***@example.test / +*********${p.traits.phone.slice(-4)}`);
        expect(JSON.stringify(b)).not.toContain(who === 'bob' || who === 'carl' ? 'nothing' : p.traits.email);
      }
    }
    // Once per employee in the ledger, however often a step is replayed.
    const [ledger] = await cairn.sql<{ n: number; keys: number }[]>`
      SELECT count(*)::int AS n, count(DISTINCT idempotency_key)::int AS keys
      FROM deliveries WHERE destination_id = ${hookId} AND message->>'employee' IS NOT NULL`;
    expect(ledger).toEqual({ n: 13, keys: 13 });
  });

  it("notifies the employee an event names and their supervisor; a merge moves the person's links", async () => {
    await publish({
      version: 1,
      name: `Tickets ${tag}`,
      trigger: { type: 'event', event: 'Ticket Escalated' },
      entry: { reentry: 'every_time' },
      nodes: [
        {
          id: 'escalate',
          type: 'notify_employees',
          who: ['event_employee', 'supervisors'],
          eventEmployee: 'properties.agent',
          destination: hookId,
          message: { body: 'Ticket {{ event.properties.ticket }} of {{ traits.email }}' },
        },
      ],
      edges: [],
    });
    const userId = `cust-${tag}`;
    const anonymousId = `anon-${tag}`;
    await send(
      { type: 'identify', userId, traits: { email: 'cust@example.test' } },
      { type: 'track', anonymousId, event: 'Page Viewed' },
    );
    const known = await profileOf(`userId=${userId}`);
    const anon = await profileOf(`anonymousId=${anonymousId}`);
    const before = (await notices(13)).length;
    await send({ type: 'track', userId, event: 'Ticket Escalated', properties: { ticket: 'T-7', agent: emp('ann') } });
    const tickets = (await notices(before + 2)).slice(before);
    expect(tickets.map((b) => [b.message.to.id, b.message.body]).sort()).toEqual([
      [emp('ann'), 'Ticket T-7 of c***@example.test'],
      [emp('carl'), 'Ticket T-7 of cust@example.test'],
    ]);

    // The known profile's owner is Bob; the anonymous one had Eve and Ann. One person after the identify.
    expect((await post(`/profiles/${known}/employees`, { employeeId: emp('bob') })).status).toBe(200);
    for (const e of ['eve', 'ann'])
      expect((await post(`/profiles/${anon}/employees`, { employeeId: emp(e) })).status).toBe(200);
    await send({ type: 'identify', userId, anonymousId });
    const survivor = await until('one profile for both', async () => {
      const [a, b] = [await profileOf(`anonymousId=${anonymousId}`), await profileOf(`userId=${userId}`)];
      return a === b ? a : undefined;
    });
    const gone = survivor === known ? anon : known;
    const expected = survivor === known ? [emp('bob'), emp('eve'), emp('ann')] : [emp('eve'), emp('ann'), emp('bob')];
    expect(await linksOf(survivor)).toEqual(expected);
    const [left] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM profile_employees WHERE profile_id = ${gone}`;
    expect(left!.n).toBe(0);
  });
});
