import { describe, expect, it } from 'vitest';
import { flow } from './builder.ts';
import type { ProfileFacts } from './facts.ts';
import { type GovernanceFacts, governanceSchema, governSend, inQuietHours } from './governance.ts';
import { simulateFlows } from './governance-sim.ts';
import { simulate } from './simulate.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const governance = (settings: Partial<GovernanceFacts['settings']>): GovernanceFacts => ({
  settings: { caps: [], quietHours: [], ...settings },
  channels: { mail: 'email', text: 'sms', receipt: 'email' },
});
const person = (g: GovernanceFacts, traits: ProfileFacts['traits'] = {}, audiences: string[] = []): ProfileFacts => ({
  id: 'p1',
  traits,
  audiences,
  tags: [],
  governance: g,
});
const start = Date.parse('2026-03-02T00:00:00Z');

describe('quiet hours', () => {
  it('holds across midnight in the zone given', () => {
    const q = { channel: 'sms', start: '21:00', end: '09:00' };
    expect(inQuietHours(q, Date.parse('2026-03-02T20:30:00Z'), 'Europe/Berlin')).toBe(true); // 21:30 local
    expect(inQuietHours(q, Date.parse('2026-03-02T08:00:00Z'), 'Europe/Berlin')).toBe(false); // 09:00 local
    expect(inQuietHours(q, Date.parse('2026-03-02T07:59:00Z'), 'Europe/Berlin')).toBe(true);
    expect(
      inQuietHours({ channel: 'sms', start: '12:00', end: '13:00' }, Date.parse('2026-03-02T12:30:00Z'), 'UTC'),
    ).toBe(true);
  });

  it('defers an SMS at 22:00 Berlin to 09:00 Berlin, and journals why; email is not held', () => {
    const def = flow('Late SMS', { timezone: 'Europe/Berlin' })
      .trigger.event('Signed Up')
      .send('text', { body: 'Welcome' })
      .send('mail', { body: 'Welcome too' })
      .build();
    const sim = simulate(def, {
      profile: person(governance({ quietHours: [{ channel: 'sms', start: '21:00', end: '09:00' }] })),
      start,
      horizon: { days: 2 },
      script: [{ at: '2026-03-02T21:00:00Z', event: { type: 'track', event: 'Signed Up' } }], // 22:00 Berlin
    });
    expect(sim.messages.map((m) => [m.destination, new Date(m.at).toISOString()])).toEqual([
      ['text', '2026-03-03T08:00:00.000Z'],
      ['mail', '2026-03-03T08:00:00.000Z'],
    ]);
    const held = sim.steps.find((s) => s.outcome === 'waiting');
    expect(held?.values).toMatchObject({ held: 'quiet', channel: 'sms' });
    expect(held?.reason).toContain('quiet hours for sms 21:00–09:00 in Europe/Berlin');
  });
});

describe('frequency caps', () => {
  const twoSends = (onCap: 'defer' | 'skip') =>
    flow('Two mails')
      .trigger.event('Go')
      .send('mail', { body: 'one' })
      .wait({ hours: 1 })
      .send('mail', { body: 'two' }, { id: 'second', onCap })
      .send('receipt', { body: 'receipt' }, { transactional: true })
      .build();
  const cap = governance({ caps: [{ channel: 'email', max: 1, windowHours: 24 }] });

  it('defers to the moment the oldest counted send leaves the window; transactional sends go at once', () => {
    const sim = simulate(twoSends('defer'), {
      profile: person(cap),
      start,
      horizon: { days: 3 },
      script: [{ at: start + HOUR, event: { type: 'track', event: 'Go' } }],
    });
    expect(sim.messages.map((m) => [m.body, (m.at - start) / HOUR])).toEqual([
      ['one', 1],
      ['two', 25],
      ['receipt', 25],
    ]);
    const held = sim.steps.find((s) => s.node === 'second' && s.outcome === 'waiting');
    expect(held?.values).toMatchObject({ held: 'capped', until: start + 25 * HOUR });
    expect(held?.reason).toContain('at most 1 email message in 24 hours (1 sent)');
  });

  it('skips when the node says so, journaled as capped, and the run goes on', () => {
    const sim = simulate(twoSends('skip'), {
      profile: person(cap),
      start,
      horizon: { days: 3 },
      script: [{ at: start + HOUR, event: { type: 'track', event: 'Go' } }],
    });
    expect(sim.messages.map((m) => m.body)).toEqual(['one', 'receipt']);
    expect(sim.steps.find((s) => s.node === 'second')).toMatchObject({ outcome: 'capped', to: 'send_4' });
    expect(sim.end.status).toBe('completed');
  });

  it('applies an audience cap only to its members, and counts past sends of other flows', () => {
    const g = governance({ caps: [{ channel: 'email', max: 2, windowHours: 720, audience: 'dormant' }] });
    const past = [start - 10 * DAY, start - 5 * DAY].map((at) => ({ at, channel: 'email' }));
    const node = { id: 's', type: 'send' as const, destination: 'mail', message: { body: 'x' } };
    const dormant = { ...person(g, {}, ['dormant']), sends: past };
    const verdict = governSend(node, dormant, start, 'UTC');
    expect(verdict).toMatchObject({ ok: false, held: 'capped', until: start + 20 * DAY });
    expect(governSend(node, { ...dormant, audiences: [] }, start, 'UTC')).toEqual({ ok: true, channel: 'email' });
  });

  it('validates settings', () => {
    expect(
      governanceSchema.safeParse({ caps: [{ channel: 'sms', max: 0, windowHours: 24 }], quietHours: [] }).success,
    ).toBe(false);
    expect(
      governanceSchema.safeParse({ caps: [], quietHours: [{ channel: 'sms', start: '21:00', end: '21:00' }] }).success,
    ).toBe(false);
    expect(
      governanceSchema.safeParse({
        caps: [{ channel: '*', max: 3, windowHours: 24, audience: 'vip' }],
        quietHours: [{ channel: 'sms', start: '21:00', end: '09:00' }],
      }).success,
    ).toBe(true);
  });
});

describe('priority', () => {
  it('at the same moment the higher-priority flow takes the last slot; the lower is deferred', () => {
    const make = (name: string, priority: number) =>
      flow(name).trigger.event('Sale').priority(priority).send('mail', { body: name }).build();
    const sim = simulateFlows({
      profile: person(governance({ caps: [{ channel: 'email', max: 1, windowHours: 24 }] })),
      // The low one is listed first: order given does not beat priority.
      flows: [
        { id: 'low', def: make('low', 0) },
        { id: 'high', def: make('high', 5) },
      ],
      start,
      horizon: { days: 2 },
      script: [{ at: start + HOUR, event: { type: 'track', event: 'Sale' } }],
    });
    expect(sim.messages.map((m) => [m.flowId, (m.at - start) / HOUR])).toEqual([
      ['high', 1],
      ['low', 25],
    ]);
    expect(sim.steps.find((s) => s.flowId === 'low' && s.outcome === 'waiting')?.values).toMatchObject({
      held: 'capped',
    });
  });
});

describe('quiet hours and DST', () => {
  it('an end that falls in the skipped hour does not end them at once (found by the property test)', () => {
    // Berlin skips 02:00–03:00 on 2026-03-29; quiet 03:00–02:00 holds at 03:00 CEST, and 02:00 never comes that day.
    const node = { id: 's', type: 'send' as const, destination: 'mail', message: { body: 'x' } };
    const g = governance({ quietHours: [{ channel: 'email', start: '03:00', end: '02:00' }] });
    const now = Date.parse('2026-03-29T01:00:00Z');
    const v = governSend(node, person(g), now, 'Europe/Berlin');
    expect(v).toMatchObject({ ok: false, held: 'quiet', until: Date.parse('2026-03-30T00:00:00Z') });
  });
});
