import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, type Receiver, until } from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: requests as the receiver got them; checked by the assertions
type Any = any;

// The employees a flow names must be in the directory and active when the flow is saved, submitted
// for review or published: otherwise a 400 that names the node and the path. A notice can address its
// employee — {{ employee.name }}, {{ employee.email }} — filled per employee it reaches, while the
// person's data stays masked as each employee's role requires.
describeOnDatabases('employees named by flows on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let hookId: string;
  const tag = randomUUID().slice(0, 8);
  const emp = (n: string) => `${n}_${tag}`;

  beforeAll(async () => {
    h = await flowHarness('employee-checks.test.ts', mode);
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    for (const [n, role] of [
      ['ann', 'masked'],
      ['bob', 'full'],
      ['gus', 'full'],
    ] as const) {
      const res = await h.post('/employees', {
        id: emp(n),
        name: `${n[0]!.toUpperCase()}${n.slice(1)}`,
        email: `${n}@corp.test`,
        role,
      });
      expect(res.status, res.text).toBe(201);
    }
    const off = await h.post(`/employees/${emp('gus')}`, { active: false }, 'PATCH');
    expect(off.status, off.text).toBe(200);
  });
  afterAll(() => h?.close());

  const owner = (node: object) => ({
    version: 1,
    name: `Owner ${tag}`,
    trigger: { type: 'event', event: 'Lead Created' },
    entry: { reentry: 'once' },
    nodes: [{ id: 'owner', type: 'assign_owner', ...node }],
    edges: [],
  });

  it('refuses an unknown or deactivated employee on save, submit and publish, naming the node', async () => {
    const unknown = await h.post('/flows', { definition: owner({ mode: 'fixed', employee: emp('nobody') }) });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toBe(`node owner: nodes.0.employee: unknown employee "${emp('nobody')}"`);

    const roundRobin = await h.post('/flows', {
      definition: owner({ mode: 'round_robin', employees: [emp('ann'), emp('gus')] }),
    });
    expect(roundRobin.status).toBe(400);
    expect(roundRobin.body.error.details).toEqual([
      { node: 'owner', path: 'nodes.0.employees.1', message: `employee "${emp('gus')}" is deactivated` },
    ]);
    const rule = await h.post('/flows', {
      definition: owner({
        mode: 'rule',
        cases: [{ rule: { op: 'trait', trait: 'country', cmp: '=', value: 'DE' }, employee: emp('ann') }],
        otherwise: emp('zed'),
      }),
    });
    expect(rule.status).toBe(400);
    expect(rule.body.error.details).toEqual([
      { node: 'owner', path: 'nodes.0.otherwise', message: `unknown employee "${emp('zed')}"` },
    ]);

    // Saved while Bob was active; he leaves before the flow is submitted, then publish is refused too.
    const saved = await h.post('/flows', { definition: owner({ mode: 'fixed', employee: emp('bob') }) });
    expect(saved.status, saved.text).toBe(201);
    expect((await h.post(`/employees/${emp('bob')}`, { active: false }, 'PATCH')).status).toBe(200);
    const submitted = await h.post(`/flows/${saved.body.id}/submit`, { note: 'ready' });
    expect(submitted.status).toBe(400);
    expect(submitted.body.error.message).toBe(`node owner: nodes.0.employee: employee "${emp('bob')}" is deactivated`);
    const published = await h.post(`/flows/${saved.body.id}/publish`, {});
    expect(published.status).toBe(400);
    expect(published.body.error.message).toContain('node owner');
    expect((await h.post(`/employees/${emp('bob')}`, { active: true }, 'PATCH')).status).toBe(200);
    expect((await h.post(`/flows/${saved.body.id}/submit`, { note: 'ready' })).status).toBe(200);
  });

  it('fills {{ employee.name }} and {{ employee.email }} per employee, the person masked per role', async () => {
    const notify = (message: object) => ({
      version: 1,
      name: `Leads ${tag}`,
      trigger: { type: 'event', event: 'Lead Created' },
      entry: { reentry: 'once' },
      nodes: [{ id: 'tell', type: 'notify_employees', who: ['linked'], destination: hookId, message }],
      edges: [],
    });
    // Only notices have an employee, and an employee has id, name, email and chatHandle.
    const onSend = await h.post('/flows', {
      definition: {
        ...notify({ body: 'x' }),
        nodes: [{ id: 'mail', type: 'send', destination: hookId, message: { body: 'Hi {{ employee.name }}' } }],
      },
    });
    expect(onSend.status).toBe(400);
    expect(onSend.body.error.message).toContain('employee.* is only in a notify_employees message');
    const badField = await h.post('/flows', { definition: notify({ body: '{{ employee.phone }}' }) });
    expect(badField.status).toBe(400);
    expect(badField.body.error.message).toContain('an employee has employee.id, employee.name, employee.email');

    await h.publish(
      notify({
        subject: 'For {{ employee.name }}: lead {{ traits.first_name }}',
        body: 'Dear {{ employee.name }} <{{ employee.email }}>, reach {{ traits.email }} ({{ employee.chatHandle | default: "no chat" }}, {{ traits.nickname }})',
      }),
    );
    const userId = `lead-${tag}`;
    await h.send({
      type: 'identify',
      userId,
      traits: { first_name: 'Pia', email: 'pia@example.test', nickname: '{{ employee.email }}' },
    });
    const profileId = await h.profileOf(userId);
    for (const e of ['ann', 'bob'])
      expect((await h.post(`/profiles/${profileId}/employees`, { employeeId: emp(e) })).status).toBe(200);
    await h.send({ type: 'track', userId, event: 'Lead Created' });
    const got = await until('two notices', async () => {
      const n = hook.accepted.map((r) => r.body as Any).filter((b) => b.message?.to);
      return n.length >= 2 ? n : undefined;
    });
    // A person's value is text: their nickname "{{ employee.email }}" is not filled in.
    expect(got.map((b) => [b.message.to.id, b.message.subject, b.message.body]).sort()).toEqual([
      [
        emp('ann'),
        'For Ann: lead Pia',
        'Dear Ann <ann@corp.test>, reach p***@example.test (no chat, {{ employee.email }})',
      ],
      [
        emp('bob'),
        'For Bob: lead Pia',
        'Dear Bob <bob@corp.test>, reach pia@example.test (no chat, {{ employee.email }})',
      ],
    ]);
  });
});
