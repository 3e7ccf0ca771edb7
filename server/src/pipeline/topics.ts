// What happened, and who hears of it. Stages never address each other: a producer hands a fact over
// with `handOff(tx, topic, payload)` (jobs/handoff.ts) inside the transaction that made it true, and
// this table decides which consumer queues receive it. Adding a stage is one line here.
//
// A leaf module: types and constants only, so every stage and the job layer can import it.

/** Payload of `profile.erased`: what destinations need to forget the person too. */
export interface ProfileErased {
  erasureId: string;
  profileIds: string[];
  /** The erased identities; sensitive ones sealed as identities.value holds them (forget.ts opens them). */
  identities: { type: string; value: string }[];
  requestedBy: string;
  /** Destinations that received this person's events: only they are told (the others never knew them). */
  destinationIds: string[];
}

/**
 * A message a flow asked for (stage 4 → stage 5): rendered, with the idempotency key of the flow's effect
 * (`flow:<run>:<node>:<iteration>`), which stays the same when the step is replayed after a crash.
 */
export interface RequestedMessage {
  key: string;
  destinationId: string;
  profileId: string;
  /** The source of the event that started the run (its consent policy applies); null: the default policy. */
  sourceId: string | null;
  flow: { id: string; version: number; node: string; runId: string };
  /** The rendered `{ subject?, body }` as JSON, sealed (`pii.sealBytes`): a message may name the person. */
  sealed: string;
  /**
   * A notice to this employee about the person (`notify_employees`): the sealed JSON also holds `to`, the
   * recipient; the person's consent and unsubscribes do not apply to it.
   */
  employee?: string;
}

/**
 * A webhook or action a flow's run awaits (stage 4 → its `effects` queue): performed with the effect's
 * key as idempotency key, its result fed back to the run. The call itself (URL, headers, body, or the
 * action's input) is sealed (`pii.sealBytes`): it may name the person.
 */
export interface RequestedEffect {
  key: string;
  type: 'webhook' | 'action' | 'issue_coupon';
  runId: string;
  profileId: string;
  flow: { id: string; version: number; node: string };
  sealed: string;
}

/** A definition of stage 3. */
export type DefinitionKind = 'audience' | 'tag' | 'computed';

/** Every fact a stage can hand over, by topic, with its payload. */
export interface Facts {
  /** Ingest committed these events (duplicates excluded): one group commit, never one event. */
  'events.stored': { ids: string[] };
  /**
   * Identify attached these events to their profiles. `restructured`: profiles identify created, merged,
   * split or orphaned meanwhile (every definition may have moved for them, not only what the events read).
   */
  'events.attached': { ids: string[]; restructured?: string[] };
  /**
   * Audience and tag changes recorded as events (`audience.entered`, `tag.removed`, …), by compute or by
   * staff. Compute follows its own changes inside the transaction that made them, so it does not hear them.
   */
  'memberships.changed': { ids: string[] };
  /** Profiles changed without an event of theirs (consent recorded by staff, an unmerge, a static tag). */
  'profiles.changed': { profileIds: string[] };
  /** A definition was created or changed: it is recomputed over every profile. */
  'definition.changed': { kind: DefinitionKind; key: string };
  /** A person was erased. */
  'profile.erased': ProfileErased;
  /** Flows' steps committed these messages: each goes into the delivery ledger once. */
  'messages.requested': { messages: RequestedMessage[] };
  /** A flow's step committed a webhook or action call its run now awaits (one call per fact). */
  'effects.requested': RequestedEffect;
}

/** A fact's name. */
export type Topic = keyof Facts;

/** The queues stages consume from; each is declared with its options in jobs/queues.ts. */
export type ConsumerQueue =
  | 'identify'
  | 'fanout'
  | 'compute'
  | 'recompute'
  | 'forget'
  | 'automate'
  | 'messages'
  | 'effects'
  | 'effects_dead'
  | 'measure';

/**
 * Who hears of what: topic → the consumer queues that each get one job per hand-off.
 *
 * - identify: resolves identities and attaches stored events to profiles (stage 2);
 * - compute: tags, audiences and computed traits of the profiles events or changes touched (stage 3);
 * - recompute: a changed definition over every profile (stage 3);
 * - fanout: one ledger row per destination that takes the event (stage 5);
 * - forget: erasures forwarded to destinations that can delete (stage 5);
 * - automate: flow triggers, and runs waiting for an event of the person (stage 4);
 * - messages: messages flows send, written to the delivery ledger (stage 5);
 * - effects: webhooks and plugin actions flows' runs await, performed and fed back (stage 4);
 * - measure: the hourly rollup of event counts that trend tiles read (stage 6);
 * - effects_dead: no topic; pg-boss moves there an `effects` job whose last attempt never finished (its
 *   worker died), and its run takes `failed` (automate/effects-worker.ts).
 */
export const SUBSCRIPTIONS = {
  'events.stored': ['identify'],
  'events.attached': ['fanout', 'compute', 'automate', 'measure'],
  'memberships.changed': ['fanout', 'automate', 'measure'],
  'profiles.changed': ['compute'],
  'definition.changed': ['recompute'],
  'profile.erased': ['forget'],
  'messages.requested': ['messages'],
  'effects.requested': ['effects'],
} as const satisfies { readonly [T in Topic]: readonly ConsumerQueue[] };

/** One job's data: the fact's payload and the topic it was handed over as. */
export type Fact<T extends Topic = Topic> = { [K in T]: Facts[K] & { topic: K } }[T];

/** The topics a queue is subscribed to. */
export type TopicsOf<Q extends ConsumerQueue> = {
  [T in Topic]: Q extends (typeof SUBSCRIPTIONS)[T][number] ? T : never;
}[Topic];

/** What a consumer queue's jobs hold: one of the facts it is subscribed to (narrow on `topic`). */
export type Inbox<Q extends ConsumerQueue> = Fact<TopicsOf<Q>>;
