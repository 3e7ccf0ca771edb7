import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import { onError } from '../http/errors.ts';
import {
  type ApiAnswer,
  adminApi,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  movableClock,
  reviewerApi,
  until,
} from '../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
type Api = ReturnType<typeof adminApi>;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('who approves', () => {
  it('takes a person behind their keys, and a key with no person as itself', () => {
    expect(actorOf({ kind: 'session', id: 'u1', userId: 'u1', role: 'admin' })).toBe('user:u1');
    expect(actorOf({ kind: 'api-key', id: 'k1', userId: 'u1', role: 'operator' })).toBe('user:u1');
    // Keys an admin key created belong to nobody in particular: each is its own actor.
    expect(actorOf({ kind: 'api-key', id: 'k2', userId: 'system', role: 'admin' })).toBe('api-key:k2');
    expect(actorOf({ kind: 'bootstrap-key', id: 'env:CAIRN_ADMIN_API_KEY', role: 'admin' })).toBe(
      'bootstrap-key:env:CAIRN_ADMIN_API_KEY',
    );
  });

  it('lets CAIRN_FLOW_APPROVER_ROLE’s role approve besides the table’s admins', async () => {
    const app = (role: 'operator' | 'analyst', also: ('operator' | 'analyst')[]) => {
      const a = new Hono<{ Variables: AuthVariables }>();
      a.onError(onError({ info() {}, debug() {}, error() {} } as never));
      a.use('*', async (c, next) => {
        c.set('principal', { kind: 'api-key', id: 'k', role });
        await next();
      });
      a.post('/approve', requirePermission('flows:approve', also), (c) => c.text('ok'));
      return a;
    };
    expect((await app('operator', []).request('/approve', { method: 'POST' })).status).toBe(403);
    expect((await app('operator', ['operator']).request('/approve', { method: 'POST' })).status).toBe(200);
    expect((await app('analyst', ['operator']).request('/approve', { method: 'POST' })).status).toBe(403);
  });
});

describeOnDatabases('flow review and lifecycle on %s', (mode) => {
  let h: FlowHarness;
  let reviewer: Api;
  let operator: Api;
  let analyst: Api;
  let hook: string;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock();
  const step = (api: Api, id: string, verb: string, body: object = {}) =>
    api(`/flows/${id}/${verb}`, { method: 'POST', body: JSON.stringify(body) });
  const admin = () => h.api;
  const definition = (name: string, event: string, body = 'Welcome') => ({
    version: 1,
    name,
    trigger: { type: 'event', event },
    entry: { reentry: 'once' },
    nodes: [
      { id: 'wait', type: 'wait', duration: { hours: 1 } },
      { id: 'hello', type: 'send', destination: hook, message: { body } },
    ],
    edges: [{ from: 'wait', to: 'hello', on: 'next' }],
  });
  const create = async (def: object) => {
    const created = await h.post('/flows', { definition: def });
    expect(created.status, created.text).toBe(201);
    return created.body.id as string;
  };
  const ok = (res: ApiAnswer, status = 200) => {
    expect(res.status, res.text).toBe(status);
    return res.body;
  };

  beforeAll(async () => {
    h = await flowHarness('flow-review.test.ts', mode, { clock });
    hook = (await h.webhook()).destinationId;
    reviewer = await reviewerApi(h.cairn.url);
    const key = async (role: string) => {
      const created = await h.post('/keys', { name: `${role} ${tag}`, role });
      return adminApi(h.cairn.url, ok(created, 201).key);
    };
    operator = await key('operator');
    analyst = await key('analyst');
  });
  afterAll(() => h?.close());

  it('names each review route’s permission in the OpenAPI description the role-matrix test walks', async () => {
    const doc = (await (await fetch(`${h.cairn.url}/api/openapi.json`)).json()) as Any;
    const permissionOf = (method: string, path: string) =>
      doc.paths[`/api/flows${path}`]?.[method]?.['x-cairn-permission'];
    expect({
      submit: permissionOf('post', '/{id}/submit'),
      approve: permissionOf('post', '/{id}/approve'),
      reject: permissionOf('post', '/{id}/reject'),
      publish: permissionOf('post', '/{id}/publish'),
      archive: permissionOf('post', '/{id}/archive'),
      review: permissionOf('get', '/{id}/review'),
      stale: permissionOf('get', '/stale'),
    }).toEqual({
      submit: 'flows:submit',
      approve: 'flows:approve',
      reject: 'flows:approve',
      publish: 'flows:write',
      archive: 'flows:write',
      review: 'flows:read',
      stale: 'flows:read',
    });
  });

  it('needs another person’s approval to go live; the author cannot approve their own change', async () => {
    const id = await create(definition(`Welcome ${tag}`, `Joined ${tag}`));
    expect(ok(await h.api(`/flows/${id}`)).review).toMatchObject({ state: 'draft', lastEditedBy: expect.any(String) });

    // Unapproved: never live, whoever publishes.
    const early = await step(admin(), id, 'publish');
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('not_approved');
    expect((await step(reviewer, id, 'approve')).status).toBe(409); // not submitted yet

    ok(await step(admin(), id, 'submit', { note: 'first version' }));
    expect((await step(admin(), id, 'publish')).status).toBe(409);
    const self = await step(admin(), id, 'approve', { note: 'looks good to me' });
    expect(self.status).toBe(403);
    expect(self.body.error).toMatchObject({ code: 'self_approval' });
    expect(self.body.error.message).toContain('another person approves it');
    expect(ok(await h.api(`/flows/${id}`)).review.state).toBe('in_review');

    const approved = ok(await step(reviewer, id, 'approve', { note: 'checked the copy' }));
    expect(approved.review).toMatchObject({ state: 'approved', lastTransition: { action: 'approve' } });
    expect(approved.review.approvedBy).not.toBe(approved.review.lastEditedBy);
    const live = ok(await step(admin(), id, 'publish', { note: 'launch' }));
    expect(live).toMatchObject({ status: 'live', version: 1, review: { state: 'published' } });
    // Nothing new to review or publish.
    expect((await step(admin(), id, 'submit')).status).toBe(409);
    expect((await step(admin(), id, 'publish')).body.error.code).toBe('not_approved');
  });

  it('lets an operator submit but not approve, and an analyst do none of it', async () => {
    const id = await create(definition(`Roles ${tag}`, `Roles ${tag}`));
    for (const verb of ['submit', 'approve', 'reject', 'publish', 'archive'])
      expect((await step(analyst, id, verb, { note: 'x' })).status, verb).toBe(403);
    ok(await step(operator, id, 'submit'));
    const refused = await step(operator, id, 'approve');
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toContain('flows:approve');
    // A reject needs a note saying why.
    expect((await step(reviewer, id, 'reject')).status).toBe(400);
    const rejected = ok(await step(reviewer, id, 'reject', { note: 'the copy is too long' }));
    expect(rejected.review).toMatchObject({
      state: 'draft',
      lastTransition: { action: 'reject', note: 'the copy is too long' },
    });
    // The operator edits it (now its last editor) and submits again; an admin who did not edit approves.
    ok(
      await operator(`/flows/${id}`, {
        method: 'PATCH',
        body: JSON.stringify({ definition: definition(`Roles ${tag}`, `Roles ${tag}`, 'Hi') }),
      }),
    );
    ok(await step(operator, id, 'submit'));
    ok(await step(admin(), id, 'approve'));
    expect(ok(await step(operator, id, 'publish')).status).toBe('live');
  });

  it('sends an approved or in-review working copy back to draft when its definition is edited', async () => {
    const id = await create(definition(`Edited ${tag}`, `Edited ${tag}`));
    ok(await step(admin(), id, 'submit'));
    ok(await step(reviewer, id, 'approve'));
    // The description is not reviewed: the approval stands.
    const described = ok(await h.post(`/flows/${id}`, { description: 'for new members' }, 'PATCH'));
    expect(described.review.state).toBe('approved');
    const edited = ok(
      await h.post(`/flows/${id}`, { definition: definition(`Edited ${tag}`, `Edited ${tag}`, 'Hey') }, 'PATCH'),
    );
    expect(edited.review).toMatchObject({ state: 'draft', approvedBy: null, submittedBy: null });
    expect((await step(admin(), id, 'publish')).body.error.code).toBe('not_approved');

    ok(await step(admin(), id, 'submit'));
    ok(await h.post(`/flows/${id}`, { definition: definition(`Edited ${tag}`, `Edited ${tag}`, 'Hello') }, 'PATCH'));
    expect(ok(await h.api(`/flows/${id}`)).review.state).toBe('draft');
    expect((await step(reviewer, id, 'approve')).status).toBe(409);
  });

  it('shows the reviewer the diff against the live version and whom it enters, where it sends', async () => {
    const event = `Reviewed ${tag}`;
    const id = await create(definition(`Diffed ${tag}`, event));
    // Never published: everything is new.
    const first = ok(await h.api(`/flows/${id}/review`));
    expect(first.against).toBeNull();
    expect(first.diff.nodes.added.map((n: Any) => n.id)).toEqual(['wait', 'hello']);

    ok(await step(admin(), id, 'submit'));
    ok(await step(reviewer, id, 'approve'));
    ok(await step(admin(), id, 'publish'));
    // Three people send the trigger event today (one twice); they enter the live version meanwhile.
    for (const who of ['a', 'b', 'c']) await h.send({ type: 'track', userId: `${who}-${tag}`, event });
    await h.send({ type: 'track', userId: `a-${tag}`, event });
    const c = await h.profileOf(`c-${tag}`);
    await until('c in the live flow', async () => ((await h.runsOf(id, c)).length ? true : undefined));

    // The live flow's working copy changes and goes through review while version 1 runs.
    const changed = definition(`Diffed ${tag}`, event, 'Welcome aboard');
    changed.nodes[0] = { id: 'wait', type: 'wait', duration: { hours: 2 } };
    changed.nodes.push({ id: 'crm', type: 'webhook', url: 'https://crm.example.com/hooks/new', method: 'POST' } as Any);
    changed.edges.push({ from: 'hello', to: 'crm', on: 'next' });
    ok(await h.post(`/flows/${id}`, { definition: changed }, 'PATCH'));
    const flow = ok(await h.api(`/flows/${id}`));
    expect(flow).toMatchObject({ status: 'live', version: 1, review: { state: 'draft' } });

    const review = await until('the three people counted', async () => {
      const r = ok(await h.api(`/flows/${id}/review`));
      return r.preview.reach.people === 3 ? r : undefined;
    });
    expect(review.against).toBe(1);
    expect(review.diff.settings).toEqual([]);
    expect(review.diff.nodes.added.map((n: Any) => n.id)).toEqual(['crm']);
    expect(review.diff.nodes.removed).toEqual([]);
    expect(review.diff.nodes.changed).toEqual([
      { id: 'wait', type: 'wait', changes: [{ path: 'duration.hours', before: 1, after: 2 }] },
      { id: 'hello', type: 'send', changes: [{ path: 'message.body', before: 'Welcome', after: 'Welcome aboard' }] },
    ]);
    expect(review.diff.edges).toEqual({ added: [{ from: 'hello', to: 'crm', on: 'next' }], removed: [] });
    expect(review.preview.reach).toMatchObject({ trigger: 'event', people: 3 });
    expect(review.preview.reach.basis).toContain('last 24 h');
    expect(review.preview.sends).toEqual({
      destinations: [{ id: hook, name: 'hook', plugin: 'webhook', channel: 'webhook', nodes: ['hello'] }],
      webhooks: [{ host: 'crm.example.com', nodes: ['crm'] }],
    });

    // Published as version 2 once approved; a day later nobody sent it in the last 24 h.
    ok(await step(admin(), id, 'submit'));
    ok(await step(reviewer, id, 'approve'));
    expect(ok(await step(admin(), id, 'publish'))).toMatchObject({ version: 2, status: 'live' });
    expect(ok(await h.api(`/flows/${id}/review`)).diff.nodes).toEqual({ added: [], removed: [], changed: [] });
  });

  it('previews a date trait trigger: the people whose moment falls in the next 24 hours', async () => {
    const at = (ms: number) => new Date(clock.now + ms);
    const soon = at(12 * HOUR);
    const time = soon.toISOString().slice(11, 16);
    const birthday = (d: Date) => `1990${d.toISOString().slice(4, 10)}`;
    // In 12 hours: counted. In 36 hours, and 12 hours ago (next year's is far): not.
    const people = { soon: birthday(soon), later: birthday(at(36 * HOUR)), past: birthday(at(-12 * HOUR)) };
    for (const [who, date] of Object.entries(people))
      await h.send({ type: 'identify', userId: `${who}-bd-${tag}`, traits: { [`bd_${tag}`]: date } });
    for (const who of Object.keys(people)) await h.profileOf(`${who}-bd-${tag}`);
    const id = await create({
      version: 1,
      name: `Birthday ${tag}`,
      trigger: { type: 'date_trait', trait: `bd_${tag}`, offsetDays: 0, time, repeat: 'yearly' },
      entry: { reentry: 'every_time' },
      nodes: [{ id: 'hello', type: 'send', destination: hook, message: { body: 'Happy birthday' } }],
      edges: [],
    });
    const review = await until('the traits folded', async () => {
      const r = ok(await h.api(`/flows/${id}/review`));
      return r.preview.reach.people === 1 ? r : undefined;
    });
    expect(review.preview.reach).toMatchObject({ trigger: 'date_trait', people: 1 });
  });

  it('records every transition in the audit log with who and why', async () => {
    const id = await create(definition(`Audited ${tag}`, `Audited ${tag}`));
    ok(await step(operator, id, 'submit', { note: 'ready for launch' }));
    expect((await step(operator, id, 'approve', { note: 'mine' })).status).toBe(403);
    ok(await step(reviewer, id, 'approve', { note: 'copy checked with legal' }));
    ok(await step(admin(), id, 'publish', { note: 'spring campaign' }));
    ok(await step(admin(), id, 'pause', { note: 'wrong coupon' }));
    const log = ok(await h.api(`/audit?resourceType=flow&resourceId=${id}&limit=50`)).data.reverse();
    expect(log.map((e: Any) => `${e.action} ${e.status}`)).toEqual([
      'flow.create 201',
      'flow.submit 200',
      'flow.approve 403',
      'flow.approve 200',
      'flow.publish 200',
      'flow.pause 200',
    ]);
    const notes = log.filter((e: Any) => e.status === 200).map((e: Any) => e.after.lastTransition);
    expect(notes.map((t: Any) => [t.action, t.note])).toEqual([
      ['submit', 'ready for launch'],
      ['approve', 'copy checked with legal'],
      ['publish', 'spring campaign'],
      ['pause', 'wrong coupon'],
    ]);
    // Who: the operator submitted, the reviewer approved; neither the same person.
    expect(log[1].actor.role).toBe('operator');
    expect(log[3].after.approvedBy).toBe(`api-key:${log[3].actor.id}`);
    expect(log[3].after.approvedBy).not.toBe(log[3].after.lastEditedBy);
    expect(log[3].before.reviewState).toBe('in_review');
  });

  it('archives a flow: nobody enters it again, it is no longer live, and it cannot be changed', async () => {
    const event = `Archived ${tag}`;
    const archived = await create(definition(`Retired ${tag}`, event));
    const control = await create(definition(`Control ${tag}`, event));
    for (const id of [archived, control]) {
      ok(await step(admin(), id, 'submit'));
      ok(await step(reviewer, id, 'approve'));
      ok(await step(admin(), id, 'publish'));
    }
    expect(ok(await step(operator, archived, 'archive', { note: 'season over' }))).toMatchObject({
      status: 'archived',
      review: { lastTransition: { action: 'archive', note: 'season over' } },
    });
    await h.send({ type: 'track', userId: `late-${tag}`, event });
    const late = await h.profileOf(`late-${tag}`);
    // The same event step decides both flows: once the control flow has the run, the archived one had its chance.
    await until('the control flow entered', async () => ((await h.runsOf(control, late)).length ? true : undefined));
    expect(await h.runsOf(archived, late)).toEqual([]);
    expect(ok(await h.api('/flows')).data.find((f: Any) => f.id === archived).status).toBe('archived');
    for (const verb of ['resume', 'submit', 'archive', 'publish'])
      expect((await step(admin(), archived, verb)).status, verb).toBe(409);
    const edit = await h.post(`/flows/${archived}`, { description: 'again?' }, 'PATCH');
    expect(edit.status).toBe(409);
  });

  it('lists live flows nobody entered in 30 days', async () => {
    const event = `Stale ${tag}`;
    const quiet = await create(definition(`Quiet ${tag}`, `Nobody sends ${tag}`));
    const busy = await create(definition(`Busy ${tag}`, event));
    for (const id of [quiet, busy]) {
      ok(await step(admin(), id, 'submit'));
      ok(await step(reviewer, id, 'approve'));
      ok(await step(admin(), id, 'publish'));
    }
    // Live for less than the window: not stale yet.
    const now = ok(await h.api('/flows/stale')).data.map((f: Any) => f.id);
    expect(now).not.toContain(quiet);
    clock.advance(31 * DAY);
    await h.send({ type: 'track', userId: `busy-${tag}`, event });
    const person = await h.profileOf(`busy-${tag}`);
    await until('busy entered', async () => ((await h.runsOf(busy, person)).length ? true : undefined));
    const stale = ok(await h.api('/flows/stale')).data;
    expect(stale.map((f: Any) => f.id)).toContain(quiet);
    expect(stale.map((f: Any) => f.id)).not.toContain(busy);
    expect(stale.find((f: Any) => f.id === quiet)).toMatchObject({ name: `Quiet ${tag}`, version: 1 });
    // Paused and archived flows are not listed (not live).
    ok(await step(admin(), quiet, 'pause'));
    expect(ok(await h.api('/flows/stale')).data.map((f: Any) => f.id)).not.toContain(quiet);
    expect(ok(await h.api('/flows/stale?days=60')).data.map((f: Any) => f.id)).not.toContain(busy);
  });
});
