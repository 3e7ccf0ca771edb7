import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { findConflicts } from '../pipeline/automate/index.ts';
import {
  type ApiAnswer,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  reviewerApi,
  until,
} from '../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

const HOUR = 3_600_000;

describeOnDatabases('conflict detection at submit on %s', (mode) => {
  let h: FlowHarness;
  const tag = randomUUID().slice(0, 8);
  const ordered = `Ordered ${tag}`;
  const vip = `vip_${tag}`;
  const ids: Record<string, string> = {};
  const dest: Record<string, string> = {};
  const ok = (res: ApiAnswer, status = 200) => {
    expect(res.status, res.text).toBe(status);
    return res.body;
  };
  const flow = (name: string, trigger: object, destination: string, more: object = {}) => ({
    version: 1,
    name: `${name} ${tag}`,
    trigger,
    entry: { reentry: 'every_time' },
    nodes: [{ id: 'hello', type: 'send', destination, message: { body: 'Hi' } }],
    edges: [],
    ...more,
  });

  beforeAll(async () => {
    h = await flowHarness('flow-conflicts.test.ts', mode);
    const r = await h.receiver();
    // Three webhook destinations standing for two email senders and an SMS gateway.
    for (const [name, channel] of [
      ['mailA', 'email'],
      ['mailB', 'email'],
      ['text', 'sms'],
    ] as const)
      dest[name] = ok(
        await h.post('/destinations', { name, plugin: 'webhook', channel, settings: { url: r.url } }),
        201,
      ).id;
    ok(
      await h.post(
        '/flow-governance',
        { caps: [{ channel: 'email', max: 1, windowHours: 24 }], quietHours: [] },
        'PUT',
      ),
    );
    ok(
      await h.post('/audiences', {
        key: vip,
        name: vip,
        rule: { op: 'trait', trait: 'tier', cmp: '=', value: 'gold' },
      }),
      201,
    );
    // p1, p2 gold and ordered; p3 ordered; p4 gold; p5 did something else.
    const people: [string, string | null, string | null][] = [
      ['p1', 'gold', ordered],
      ['p2', 'gold', ordered],
      ['p3', 'silver', ordered],
      ['p4', 'gold', null],
      ['p5', null, `Other ${tag}`],
    ];
    for (const [who, tier, event] of people) {
      const userId = `${who}-${tag}`;
      if (tier) await h.send({ type: 'identify', userId, traits: { tier } });
      if (event) await h.send({ type: 'track', userId, event, properties: { total: 50 } });
    }
    for (const [who] of people) ids[who] = await h.profileOf(`${who}-${tag}`);
    const members = async () => (await h.api(`/audiences/${vip}/members?limit=100`)).body?.data?.length;
    await until('vip computed with its three members', async () => ((await members()) === 3 ? true : undefined));

    // Live: one on the same event and channel (another email destination, higher priority), one on the
    // same audience by SMS, one unrelated (another event).
    ids.sameEvent = await h.publish(
      flow('Same event', { type: 'event', event: ordered }, dest.mailB!, { priority: 5 }),
    );
    ids.sameAudience = await h.publish(flow('Same audience', { type: 'audience_entered', audience: vip }, dest.text!));
    ids.unrelated = await h.publish(flow('Unrelated', { type: 'event', event: `Other ${tag}` }, dest.mailB!));
  });
  afterAll(() => h?.close());

  it('lists the live flows that can message the same people on the same channel close in time, and keeps them for the reviewer', async () => {
    // The flow submitted: the same event, for vip members, an email an hour later.
    // Two with as many people in common are listed by name: 'Later …' before 'Same event …'.
    const def = flow(
      'Submitted',
      {
        type: 'event',
        event: ordered,
        where: [{ property: 'total', cmp: '>', value: 10 }],
      },
      dest.mailA!,
      {
        priority: 1,
        entry: { reentry: 'every_time', rule: { op: 'in_audience', audience: vip } },
        nodes: [
          { id: 'later', type: 'wait', duration: { hours: 1 } },
          { id: 'hello', type: 'send', destination: dest.mailA, message: { body: 'Hi' } },
        ],
        edges: [{ from: 'later', to: 'hello', on: 'next' }],
      },
    );
    const id = ok(await h.post('/flows', { definition: def }), 201).id;
    // A draft's review finds them now; wait until every event is attached to its person.
    const draft = await until('the orders counted', async () => {
      const r = ok(await h.api(`/flows/${id}/review`));
      return r.conflicts[0]?.measured.liveCount === 3 ? r : undefined;
    });
    expect(draft.conflictCheck).toMatchObject({ asSubmitted: false, windowHours: 24 });

    const submitted = ok(await h.post(`/flows/${id}/submit`, { note: 'spring orders' }));
    expect(submitted.review.state).toBe('in_review');
    const expected = [
      {
        flowId: ids.sameEvent,
        name: `Same event ${tag}`,
        version: 1,
        priority: 5,
        reasons: [
          { kind: 'same_event', event: ordered, text: `both start when a person sends "${ordered}"` },
          { kind: 'same_channel', channel: 'email', text: 'both send by email' },
          {
            kind: 'close_in_time',
            gapMs: HOUR,
            sends: [
              { node: 'hello', destination: dest.mailA, channel: 'email', afterMs: HOUR },
              { node: 'hello', destination: dest.mailB, channel: 'email', afterMs: 0 },
            ],
            text: 'their sends can come 1 h apart (hello 1 h after entry, hello at entry)',
          },
        ],
        // p1 and p2 ordered and are vip; p3 ordered too. Nobody else counts.
        measured: {
          overlapCount: 2,
          submittedCount: 2,
          liveCount: 3,
          capped: false,
          note: `submitted: people who sent "${ordered}" in the last 30 days and meet its entry rule; live: people who sent "${ordered}" in the last 30 days`,
        },
        slot: {
          caps: [{ channel: 'email', max: 1, windowHours: 24 }],
          winner: 'live',
          text: '1 per 24 h on email; the live flow wins a capped slot (priority 5 over 1)',
        },
      },
    ];
    expect(submitted.conflicts).toEqual(expected);

    // Another flow on the same event goes live meanwhile: the reviewer still sees what the submitter saw.
    ids.later = await h.publish(flow('Later', { type: 'event', event: ordered }, dest.mailA!));
    const review = ok(await h.api(`/flows/${id}/review`));
    expect(review.conflicts).toEqual(expected);
    expect(review.conflictCheck).toMatchObject({ asSubmitted: true, windowHours: 24 });
    const reviewer = await reviewerApi(h.cairn.url);
    ok(await reviewer(`/flows/${id}/approve`, { method: 'POST', body: '{}' }));
    expect(ok(await h.api(`/flows/${id}/review`)).conflicts).toEqual(expected);

    // Edited, it is a draft again and its review finds the conflicts as they are now: both.
    const again = ok(await h.post(`/flows/${id}`, { definition: { ...def, priority: 9 } }, 'PATCH'));
    expect(again.review.state).toBe('draft');
    const now = ok(await h.api(`/flows/${id}/review`));
    expect(now.conflictCheck.asSubmitted).toBe(false);
    expect(now.conflicts.map((c: Any) => [c.flowId, c.measured.overlapCount, c.slot.winner])).toEqual([
      [ids.later, 2, 'submitted'],
      [ids.sameEvent, 2, 'submitted'],
    ]);
    // The later flow sends by the same destination, at entry: same_destination, not same_channel.
    expect(now.conflicts[0].reasons.map((r: Any) => r.kind)).toEqual([
      'same_event',
      'same_destination',
      'close_in_time',
    ]);
  });

  it('counts the people its own conditions admit, and exempts a transactional send from caps', async () => {
    // For people outside vip, on orders with a negative total (nobody's), a transactional receipt.
    const def = flow(
      'Receipt',
      { type: 'event', event: ordered, where: [{ property: 'total', cmp: '<', value: 0 }] },
      dest.mailA!,
      {
        entry: { reentry: 'once', rule: { op: 'not', rule: { op: 'in_audience', audience: vip } } },
        nodes: [
          { id: 'hello', type: 'send', destination: dest.mailA, message: { body: 'Receipt' }, transactional: true },
        ],
      },
    );
    const id = ok(await h.post('/flows', { definition: def }), 201).id;
    const submitted = ok(await h.post(`/flows/${id}/submit`, {}));
    // The event flows without conditions may meet the same orders; the SMS flow enters vip members only,
    // whom this one's entry rule excludes, and the unrelated one starts on another event.
    expect(
      submitted.conflicts.map((c: Any) => [c.flowId, c.measured.overlapCount, c.measured.submittedCount, c.slot]),
    ).toEqual(
      [ids.later, ids.sameEvent].map((flowId) => [
        flowId,
        0,
        0,
        {
          caps: [],
          winner: flowId === ids.sameEvent ? 'live' : 'tie',
          text:
            flowId === ids.sameEvent
              ? 'a transactional send: exempt from frequency caps; the live flow wins a capped slot (priority 5 over 0)'
              : 'a transactional send: exempt from frequency caps; equal priority (0): the message due first takes the slot',
        },
      ]),
    );
    // Each live flow's own people are still counted: three ordered (the later flow's entry has no rule).
    expect(submitted.conflicts.map((c: Any) => c.measured.liveCount)).toEqual([3, 3]);
  });

  it('reads at most the candidates it is given per flow, and says the counts are lower bounds then', async () => {
    // Three "Ordered" rows (p1, p2, p3). Read through the stage's function with a small limit.
    const def = flow('Bounded', { type: 'event', event: ordered }, dest.mailA!);
    const channels: Record<string, string> = { [dest.mailA!]: 'email', [dest.mailB!]: 'email' };
    const check = { now: new Date(), channelOf: (d: string) => channels[d], dbKind: mode } as const;
    const measured = async (maxPeople: number) =>
      (await findConflicts(h.cairn.sql, 'flw_none', def as never, { ...check, maxPeople })).flows.find(
        (f) => f.flowId === ids.sameEvent,
      )?.measured;
    expect(await measured(3)).toMatchObject({ overlapCount: 3, submittedCount: 3, liveCount: 3, capped: false });
    // Each side keeps the two lowest profile ids of the same three people: the overlap among them is exact.
    const capped = await measured(2);
    expect(capped).toMatchObject({ overlapCount: 2, submittedCount: 2, liveCount: 2, capped: true });
    expect(capped?.note).toMatch(/^lower bounds: counted among the 2 lowest profile ids of each side/);
  });
});
