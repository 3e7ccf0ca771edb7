// The seed flows of issue 17 ("Must show"), as the JSON definitions a marketing team would save through
// `POST /api/flows`, for the end-to-end test that runs them against real receivers (flows-seeds.test.ts).
// Several flows start on `Signed Up`: each reads the `cohort` property of the sign-up, so one test's
// people enter only the flow that test is about while all the seeds stay live together.

/** The destinations the seeds send through. */
export interface SeedDestinations {
  mail: string;
  sms: string;
  hook: string;
}

const DAY = { days: 1 };
const chain = (ids: string[]) => ids.slice(1).map((to, i) => ({ from: ids[i]!, to, on: 'next' }));
const signedUp = (cohort: string) => ({
  type: 'event',
  event: 'Signed Up',
  where: [{ property: 'cohort', cmp: '=', value: cohort }],
});
const ordered = { op: 'performed', event: 'Order Completed' };

/**
 * New-user activation: D1 email with a coupon, D3 SMS guide, D7 email with a second coupon.
 *
 * @example
 * await post('/flows', { definition: activation(d) });
 */
export const activation = (d: SeedDestinations) => ({
  version: 1,
  name: 'New-user activation',
  trigger: signedUp('activation'),
  entry: { reentry: 'once' },
  nodes: [
    { id: 'd1', type: 'wait', duration: DAY },
    {
      id: 'd1_coupon',
      type: 'send',
      destination: d.mail,
      message: {
        subject: 'Welcome, {{ traits.first_name }}: 10% off your first order',
        body: 'Hi {{ traits.first_name }}, your coupon is {{ event.properties.coupon }}.',
      },
    },
    { id: 'd3', type: 'wait', duration: { days: 2 } },
    {
      id: 'd3_guide',
      type: 'send',
      destination: d.sms,
      message: { body: '{{ traits.first_name }}, get started in 3 steps: https://shop.example/guide' },
    },
    { id: 'd7', type: 'wait', duration: { days: 4 } },
    {
      id: 'd7_coupon',
      type: 'send',
      destination: d.mail,
      message: {
        subject: 'A second coupon for you',
        body: 'Still looking, {{ traits.first_name }}? Take 15% off with SECOND15.',
      },
    },
  ],
  edges: chain(['d1', 'd1_coupon', 'd3', 'd3_guide', 'd7', 'd7_coupon']),
});

/**
 * Registered but no first order: D1 coupon, D3 expiry reminder, D7 tag for manual follow-up; an order
 * at any check ends it.
 *
 * @example
 * await post('/flows', { definition: noFirstOrder(d) });
 */
export const noFirstOrder = (d: SeedDestinations) => {
  const check = (id: string) => ({ id, type: 'branch', cases: [{ name: 'ordered', rule: ordered }] });
  return {
    version: 1,
    name: 'Registered, no first order',
    trigger: signedUp('first_order'),
    entry: { reentry: 'once' },
    nodes: [
      { id: 'd1', type: 'wait', duration: DAY },
      check('d1_check'),
      {
        id: 'coupon',
        type: 'send',
        destination: d.mail,
        message: { subject: 'Your first order: 10% off', body: 'Use FIRST10 at checkout, {{ traits.first_name }}.' },
      },
      { id: 'd3', type: 'wait', duration: { days: 2 } },
      check('d3_check'),
      {
        id: 'expiry',
        type: 'send',
        destination: d.sms,
        message: { body: 'FIRST10 expires tomorrow, {{ traits.first_name }}.' },
      },
      { id: 'd7', type: 'wait', duration: { days: 4 } },
      check('d7_check'),
      { id: 'followup', type: 'update_profile', addTags: ['needs_manual_followup'] },
      { id: 'ordered', type: 'exit' },
    ],
    edges: [
      ...chain(['d1', 'd1_check']),
      { from: 'd1_check', to: 'ordered', on: 'case:0' },
      { from: 'd1_check', to: 'coupon', on: 'else' },
      ...chain(['coupon', 'd3', 'd3_check']),
      { from: 'd3_check', to: 'ordered', on: 'case:0' },
      { from: 'd3_check', to: 'expiry', on: 'else' },
      ...chain(['expiry', 'd7', 'd7_check']),
      { from: 'd7_check', to: 'ordered', on: 'case:0' },
      { from: 'd7_check', to: 'followup', on: 'else' },
    ],
  };
};

/**
 * Cart abandoned 24 h, with the order as the goal that ends the run.
 *
 * @example
 * await post('/flows', { definition: cartAbandoned(d) });
 */
export const cartAbandoned = (d: SeedDestinations) => ({
  version: 1,
  name: 'Cart abandoned',
  trigger: { type: 'event', event: 'Added To Cart' },
  entry: { reentry: 'once' },
  goal: { event: { event: 'Order Completed' }, withinSeconds: 3 * 86_400, exit: true },
  nodes: [
    { id: 'wait_24h', type: 'wait', duration: { hours: 24 } },
    {
      id: 'reminder',
      type: 'send',
      destination: d.mail,
      message: {
        subject: 'Forgot your {{ event.properties.product }}?',
        body: 'Hi {{ traits.first_name }}, your {{ event.properties.product }} is still in your cart.',
      },
    },
  ],
  edges: chain(['wait_24h', 'reminder']),
});

/**
 * Coupon unused after 3 days → SMS: the coupon issued after the sign-up is kept in the run's data, and
 * only its own redemption (matched to the run's data) stops the reminder.
 *
 * @example
 * await post('/flows', { definition: couponUnused(d) });
 */
export const couponUnused = (d: SeedDestinations) => ({
  version: 1,
  name: 'Coupon unused',
  trigger: signedUp('coupon'),
  entry: { reentry: 'once' },
  nodes: [
    {
      id: 'issued',
      type: 'wait_for_event',
      event: { event: 'Coupon Issued' },
      keep: { coupon: 'properties.code' },
      timeout: DAY,
    },
    {
      id: 'welcome',
      type: 'send',
      destination: d.mail,
      message: { subject: 'Your welcome coupon', body: 'Use {{ run.coupon }} for 10% off.' },
    },
    {
      id: 'redeemed',
      type: 'wait_for_event',
      event: { event: 'Coupon Redeemed' },
      match: [{ field: 'properties.code', run: 'coupon' }],
      timeout: { days: 3 },
    },
    {
      id: 'reminder',
      type: 'send',
      destination: d.sms,
      message: { body: '{{ traits.first_name }}, your coupon {{ run.coupon }} is still unused: it expires soon.' },
    },
    { id: 'used', type: 'exit' },
    { id: 'no_coupon', type: 'exit' },
  ],
  edges: [
    { from: 'issued', to: 'welcome', on: 'matched' },
    { from: 'issued', to: 'no_coupon', on: 'timeout' },
    { from: 'welcome', to: 'redeemed', on: 'next' },
    { from: 'redeemed', to: 'used', on: 'matched' },
    { from: 'redeemed', to: 'reminder', on: 'timeout' },
  ],
});

/** Signed in before, but neither signed in nor ordered in the last 30 days (the rule language's event conditions). */
export const CHURN_AUDIENCE = {
  key: 'churn_30d',
  name: 'No sign-in or order for 30 days',
  rule: {
    op: 'and',
    rules: [
      { op: 'performed', event: 'Signed In' },
      { op: 'performed', event: 'Signed In', within: { last: 30, unit: 'days' }, max: 0 },
      { op: 'performed', event: 'Order Completed', within: { last: 30, unit: 'days' }, max: 0 },
    ],
  },
};

/**
 * Churn recall: entering the churn audience sends an SMS and a push through a webhook.
 *
 * @example
 * await post('/flows', { definition: churnRecall(d) });
 */
export const churnRecall = (d: SeedDestinations) => ({
  version: 1,
  name: 'Churn recall',
  trigger: { type: 'audience_entered', audience: CHURN_AUDIENCE.key },
  entry: { reentry: { afterDays: 90 } },
  nodes: [
    {
      id: 'recall_sms',
      type: 'send',
      destination: d.sms,
      message: { body: 'We miss you, {{ traits.first_name }}! 20% off this week with COMEBACK20.' },
    },
    {
      id: 'recall_push',
      type: 'send',
      destination: d.hook,
      message: { subject: 'Come back', body: '{{ traits.first_name }}, your COMEBACK20 offer is waiting.' },
    },
  ],
  edges: chain(['recall_sms', 'recall_push']),
});

/** Ordered before, but not in the last 60 days. */
export const DORMANT_AUDIENCE = {
  key: 'dormant_60d',
  name: 'No order for 60 days',
  rule: {
    op: 'and',
    rules: [ordered, { ...ordered, within: { last: 60, unit: 'days' }, max: 0 }],
  },
};

/**
 * Dormant high spender: entering the dormant audience with an average order of at least 600 → email;
 * D7 SMS unless the gift was redeemed.
 *
 * @example
 * await post('/flows', { definition: dormantHighSpender(d) });
 */
export const dormantHighSpender = (d: SeedDestinations) => ({
  version: 1,
  name: 'Dormant high spender',
  trigger: { type: 'audience_entered', audience: DORMANT_AUDIENCE.key },
  entry: {
    rule: { op: 'aggregate', fn: 'avg', event: 'Order Completed', property: 'total', cmp: '>=', value: 600 },
    reentry: 'once',
  },
  nodes: [
    {
      id: 'gift',
      type: 'send',
      destination: d.mail,
      message: {
        subject: '{{ traits.first_name }}, a gift for our best customers',
        body: 'Take 100 off your next order with VIP100.',
      },
    },
    {
      id: 'd7',
      type: 'wait_for_event',
      event: { event: 'Coupon Redeemed', where: [{ property: 'code', cmp: '=', value: 'VIP100' }] },
      timeout: { days: 7 },
    },
    {
      id: 'nudge',
      type: 'send',
      destination: d.sms,
      message: { body: 'Your VIP100 gift is still waiting, {{ traits.first_name }}.' },
    },
    { id: 'redeemed', type: 'exit' },
  ],
  edges: [
    { from: 'gift', to: 'd7', on: 'next' },
    { from: 'd7', to: 'redeemed', on: 'matched' },
    { from: 'd7', to: 'nudge', on: 'timeout' },
  ],
});

/** VIP customers, by their tier trait. */
export const VIP_AUDIENCE = {
  key: 'vip',
  name: 'VIP customers',
  rule: { op: 'trait', trait: 'tier', cmp: '=', value: 'vip' },
};

/**
 * VIP birthday − 7 days at 10:00 in the person's time zone.
 *
 * @example
 * await post('/flows', { definition: vipBirthday(d) });
 */
export const vipBirthday = (d: SeedDestinations) => ({
  version: 1,
  name: 'VIP birthday',
  trigger: { type: 'date_trait', trait: 'birthday', offsetDays: -7, time: '10:00', repeat: 'yearly' },
  entry: { rule: { op: 'in_audience', audience: VIP_AUDIENCE.key }, reentry: { afterDays: 300 } },
  nodes: [
    {
      id: 'gift',
      type: 'send',
      destination: d.mail,
      message: {
        subject: 'A gift for you, {{ traits.first_name }}',
        body: 'Happy birthday next week! BDAY25 is yours.',
      },
    },
  ],
  edges: [],
});

/** People who asked for the weekly newsletter. */
export const NEWSLETTER_AUDIENCE = {
  key: 'newsletter',
  name: 'Newsletter readers',
  rule: { op: 'trait', trait: 'newsletter', cmp: '=', value: true },
};

/**
 * Every Monday 09:00 (Berlin) to the newsletter audience.
 *
 * @example
 * await post('/flows', { definition: mondayDigest(d) });
 */
export const mondayDigest = (d: SeedDestinations) => ({
  version: 1,
  name: 'Monday digest',
  trigger: { type: 'schedule', cron: '0 9 * * 1', timezone: 'Europe/Berlin', audience: NEWSLETTER_AUDIENCE.key },
  entry: { reentry: 'every_time' },
  nodes: [
    {
      id: 'digest',
      type: 'send',
      destination: d.mail,
      message: { subject: 'This week at the shop', body: 'Hi {{ traits.first_name }}, here is what is new this week.' },
    },
  ],
  edges: [],
});

/**
 * The instant a local date and time of day is in a time zone (through `Intl`, DST included).
 *
 * @example
 * zonedInstant('2026-06-08', '10:00', 'Europe/Berlin'); // Date.parse('2026-06-08T08:00:00Z')
 */
export function zonedInstant(date: string, time: string, zone: string): number {
  const wall = Date.parse(`${date}T${time}:00Z`);
  const offsetAt = (ms: number) => {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      })
        .formatToParts(ms)
        .map((p) => [p.type, p.value]),
    );
    const local = Date.UTC(+parts.year!, +parts.month! - 1, +parts.day!, +parts.hour!, +parts.minute!, +parts.second!);
    return local - ms;
  };
  // Twice: the offset at the first guess may differ from the offset at the answer near a DST change.
  const first = wall - offsetAt(wall);
  return wall - offsetAt(first);
}
