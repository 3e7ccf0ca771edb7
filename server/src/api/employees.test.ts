import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Role } from '../auth/keys.ts';
import type { Cairn } from '../server.ts';
import {
  type ApiAnswer,
  adminApi,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  sendEvents,
  TEST_ADMIN_KEY,
  until,
} from '../testing/index.ts';

// The employee directory and people's links to employees through the admin API: CRUD, supervisor
// chains without cycles, links in order (the first is the lead owner), what each role may do, and the
// audit log's record of it.
describeOnDatabases('employees API on %s', (mode) => {
  let h: FlowHarness;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  const tag = randomUUID().slice(0, 8);
  const call = (method: string, path: string, body?: unknown, as = api) =>
    as(path, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const emp = (name: string) => `emp_${name}_${tag}`;

  beforeAll(async () => {
    h = await flowHarness('employees.test.ts', mode);
    ({ cairn, api } = h);
  });
  afterAll(() => h?.close());

  it('creates, reads, patches only the fields given, and deletes employees', async () => {
    const created = await call('POST', '/employees', {
      id: emp('ann'),
      name: 'Ann',
      email: 'ann@corp.test',
      chatHandle: '@ann',
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({
      id: emp('ann'),
      name: 'Ann',
      email: 'ann@corp.test',
      chatHandle: '@ann',
      supervisorId: null,
      role: 'masked',
      active: true,
    });
    expect((await call('POST', '/employees', { id: emp('ann'), name: 'Twice' })).status).toBe(409);
    expect((await call('POST', '/employees', { id: emp('x'), name: 'X', email: 'not-an-address' })).status).toBe(400);
    expect((await call('POST', '/employees', { id: emp('x'), name: 'X', supervisorId: 'nobody' })).status).toBe(400);

    const patched = await call('PATCH', `/employees/${emp('ann')}`, { role: 'full' });
    expect(patched.status, patched.text).toBe(200);
    const { updatedAt: _a, ...after } = patched.body;
    const { updatedAt: _b, ...before } = created.body;
    expect(after).toEqual({ ...before, role: 'full' });
    expect((await call('PATCH', `/employees/${emp('ann')}`, { nmae: 'typo' })).status).toBe(400);
    expect((await call('GET', `/employees/${emp('ann')}`)).body).toMatchObject({
      role: 'full',
      email: 'ann@corp.test',
    });
    expect((await call('GET', '/employees')).body.data.map((e: { id: string }) => e.id)).toContain(emp('ann'));

    expect((await call('DELETE', `/employees/${emp('ann')}`)).status).toBe(204);
    expect((await call('GET', `/employees/${emp('ann')}`)).status).toBe(404);
    expect((await call('DELETE', `/employees/${emp('ann')}`)).status).toBe(404);
  });

  it('keeps supervisor chains free of cycles and shows the chain and reports', async () => {
    // dora ← carl ← bob (bob reports to carl, carl to dora).
    for (const [n, sup] of [
      ['dora', null],
      ['carl', emp('dora')],
      ['bob', emp('carl')],
    ] as const)
      expect((await call('POST', '/employees', { id: emp(n), name: n, supervisorId: sup })).status).toBe(201);
    const bob = (await call('GET', `/employees/${emp('bob')}`)).body;
    expect(bob.supervisors).toEqual([emp('carl'), emp('dora')]);
    expect((await call('GET', `/employees/${emp('dora')}`)).body.reports).toEqual([emp('carl')]);

    const self = await call('PATCH', `/employees/${emp('bob')}`, { supervisorId: emp('bob') });
    expect(self.status).toBe(400);
    const cycle = await call('PATCH', `/employees/${emp('dora')}`, { supervisorId: emp('bob') });
    expect(cycle.status, cycle.text).toBe(409);
    expect(cycle.body.error.message).toContain('cycle');
    expect((await call('GET', `/employees/${emp('dora')}`)).body.supervisorId).toBeNull();
    // Someone reports to carl: not deleted until they have another supervisor.
    const refused = await call('DELETE', `/employees/${emp('carl')}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.details.reports).toEqual([emp('bob')]);
    expect((await call('PATCH', `/employees/${emp('bob')}`, { supervisorId: emp('dora') })).status).toBe(200);
    expect((await call('DELETE', `/employees/${emp('carl')}`)).status).toBe(204);
    expect((await call('GET', `/employees/${emp('bob')}`)).body.supervisors).toEqual([emp('dora')]);
  });

  it('links employees to a person in order, the first being the lead owner', async () => {
    const userId = `u-${tag}`;
    await sendEvents(cairn, cairn.demoSource!.writeKey, [{ type: 'identify', userId, traits: { plan: 'pro' } }]);
    const profileId = await until(
      'the profile',
      async () => (await api(`/profiles?userId=${userId}`)).body?.data?.[0]?.id as string | undefined,
    );
    for (const n of ['eve', 'fay', 'gus'])
      expect((await call('POST', '/employees', { id: emp(n), name: n })).status).toBe(201);
    const path = `/profiles/${profileId}/employees`;
    const ids = (a: ApiAnswer) => a.body.data.map((l: { employeeId: string }) => l.employeeId);

    expect(ids(await call('POST', path, { employeeId: emp('eve') }))).toEqual([emp('eve')]);
    expect(ids(await call('POST', path, { employeeId: emp('fay') }))).toEqual([emp('eve'), emp('fay')]);
    const lead = await call('POST', path, { employeeId: emp('gus'), lead: true });
    expect(ids(lead)).toEqual([emp('gus'), emp('eve'), emp('fay')]);
    expect(lead.body.data[0]).toMatchObject({ lead: true, position: 0, employee: { name: 'gus' } });
    // Linking again changes nothing unless it asks for the lead.
    expect(ids(await call('POST', path, { employeeId: emp('fay') }))).toEqual([emp('gus'), emp('eve'), emp('fay')]);
    expect(ids(await call('POST', path, { employeeId: emp('fay'), lead: true }))).toEqual([
      emp('fay'),
      emp('gus'),
      emp('eve'),
    ]);
    expect((await call('POST', path, { employeeId: 'nobody' })).status).toBe(404);

    const order = [emp('eve'), emp('fay'), emp('gus')];
    expect(ids(await call('PUT', `${path}/order`, { employeeIds: order }))).toEqual(order);
    expect((await call('PUT', `${path}/order`, { employeeIds: [emp('eve')] })).status).toBe(400);
    expect((await call('PUT', `${path}/order`, { employeeIds: [emp('eve'), emp('eve'), emp('fay')] })).status).toBe(
      400,
    );

    expect(ids(await call('DELETE', `${path}/${emp('eve')}`))).toEqual([emp('fay'), emp('gus')]);
    expect((await call('DELETE', `${path}/${emp('eve')}`)).status).toBe(404);
    // Deleting an employee removes their links.
    expect((await call('DELETE', `/employees/${emp('gus')}`)).status).toBe(204);
    expect(ids(await call('GET', path))).toEqual([emp('fay')]);
    expect((await call('GET', `/profiles/${randomUUID()}/employees`)).status).toBe(404);

    const audit = await call('GET', `/audit?resourceType=profile&resourceId=${profileId}`);
    expect(audit.status, audit.text).toBe(200);
    const actions = audit.body.data.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['profile.employee_link', 'profile.employee_order']));
    const unlink = audit.body.data.find((e: { action: string }) => e.action === 'profile.employee_unlink');
    expect(unlink.after).toEqual({ employees: [emp('fay'), emp('gus')] });
  });

  it('lets admins and operators write and analysts only read', async () => {
    const keyOf = async (role: Role) => {
      const res = await call('POST', '/keys', { name: `${role} ${tag}`, role });
      expect(res.status, res.text).toBe(201);
      return adminApi(cairn.url, res.body.key);
    };
    const as: Record<Role, typeof api> = {
      admin: adminApi(cairn.url, TEST_ADMIN_KEY),
      operator: await keyOf('operator'),
      analyst: await keyOf('analyst'),
    };
    for (const role of ['admin', 'operator', 'analyst'] as const) {
      const id = emp(`by_${role}`);
      expect((await call('GET', '/employees', undefined, as[role])).status).toBe(200);
      const created = await call('POST', '/employees', { id, name: role }, as[role]);
      expect(created.status, `${role} creates`).toBe(role === 'analyst' ? 403 : 201);
      const target = role === 'analyst' ? emp('by_admin') : id;
      const patched = await call('PATCH', `/employees/${target}`, { name: 'renamed' }, as[role]);
      expect(patched.status, `${role} patches`).toBe(role === 'analyst' ? 403 : 200);
    }
  });
});
