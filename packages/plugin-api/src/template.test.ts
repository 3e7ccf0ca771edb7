import { describe, expect, it } from 'vitest';
import { itemScope, lookup, render } from './template.ts';
import type { DeliveryItem } from './types.ts';

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const item = (over: Partial<DeliveryItem> = {}): DeliveryItem => ({
  idempotencyKey: 'm1:d1',
  attempt: 1,
  event: { type: 'track', messageId: 'm1', timestamp: '2026-11-22T10:00:00.000Z', event: 'Order Completed' },
  profile: {
    id: 'p1',
    userId: 'u1',
    email: 'ada@example.test',
    phone: '+4915112345678',
    anonymousIds: [],
    traits: { first_name: 'Ada', tags: ['vip', 'beta'], address: { city: 'Berlin' } },
  },
  ...over,
});

describe('render', () => {
  it('fills traits by bare name or path, event fields, and the extras', () => {
    const scope = itemScope(item({ event: { ...item().event, properties: { total: 42.5, paid: true } } }), {
      unsubscribe_url: 'https://u.test/x',
    });
    expect(
      render(
        '{{first_name}}|{{ traits.first_name }}|{{trait.address.city}}|{{event.event}}|{{event.properties.total}}|' +
          '{{event.properties.paid}}|{{tags}}|{{tags.1}}|{{email}}|{{phone}}|{{user_id}}|{{unsubscribe_url}}',
        scope,
      ),
    ).toBe(
      'Ada|Ada|Berlin|Order Completed|42.5|true|vip, beta|beta|ada@example.test|+4915112345678|u1|https://u.test/x',
    );
  });

  it('renders a missing value as nothing, or as the fallback after |', () => {
    const scope = itemScope(item());
    expect(render('[{{nope}}][{{event.properties.x.y}}][{{nope | there}}][{{first_name|x}}]', scope)).toBe(
      '[][][there][Ada]',
    );
  });

  it('escapes values only, never the template text or fallback', () => {
    const scope = { traits: { name: '<i>&</i>' } };
    expect(render('<b>{{name}}</b>{{x | <br>}}', scope, escapeHtml)).toBe('<b>&lt;i&gt;&amp;&lt;/i&gt;</b><br>');
  });

  it('never reaches inherited members', () => {
    const scope = itemScope(item());
    expect(render('{{constructor}}{{event.constructor}}{{__proto__}}{{traits.toString}}{{tags.map}}', scope)).toBe('');
    expect(lookup({ traits: {} }, 'hasOwnProperty')).toBeUndefined();
  });

  it('renders objects as JSON and leaves malformed placeholders as text', () => {
    const scope = itemScope(item());
    expect(render('{{address}} {{ first name }} {{first_name', scope)).toBe(
      '{"city":"Berlin"} {{ first name }} {{first_name',
    );
  });

  it('takes the event traits when there is no profile, the profile traits over them otherwise', () => {
    const event = { ...item().event, type: 'identify', traits: { first_name: 'Grace', plan: 'pro' } };
    expect(render('{{first_name}} {{plan}}', itemScope(item({ event, profile: null })))).toBe('Grace pro');
    expect(render('{{first_name}} {{plan}}', itemScope(item({ event })))).toBe('Ada pro');
  });
});
