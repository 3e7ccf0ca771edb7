import type { z } from 'zod';

/** The version of the plugin contract this package defines; see `PluginDefinition.apiVersion`. */
export const PLUGIN_API_VERSION = 1;

/** Contract versions a server built on this package can load. */
export const SUPPORTED_API_VERSIONS: readonly number[] = [1];

/**
 * Event types a plugin may accept: the tracking calls, plus what audiences and tags emit. A plugin that
 * takes everything says `accepts: ACCEPTED_EVENTS`.
 */
export const ACCEPTED_EVENTS = [
  'track',
  'identify',
  'page',
  'screen',
  'group',
  'alias',
  'audience.entered',
  'audience.exited',
  'tag.added',
  'tag.removed',
] as const;

/** One of {@link ACCEPTED_EVENTS}. */
export type AcceptedEvent = (typeof ACCEPTED_EVENTS)[number];

/** Message channels: their plugins get unsubscribe links, and unsubscribes are enforced on them. */
export type Channel = 'email' | 'sms' | 'push' | 'chat' | 'webhook';

/** The person an event belongs to, as a destination sees them. */
export interface DeliveryProfile {
  id: string;
  userId: string | null;
  email: string | null;
  phone: string | null;
  anonymousIds: string[];
  traits: Record<string, unknown>;
}

/** The event as stored (Segment fields, corrected timestamp, enriched context). */
export interface DeliveredEvent {
  type: string;
  messageId: string;
  timestamp: string;
  event?: string;
  name?: string;
  userId?: string;
  anonymousId?: string;
  groupId?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  context?: Record<string, unknown>;
  [field: string]: unknown;
}

/**
 * A message a flow sends through the destination, rendered by Cairn (templates filled from the person's
 * traits, the event that started the flow and the run's data). Plugins that send messages should send
 * this subject and body instead of their own templates.
 */
export interface DeliveryMessage {
  subject?: string;
  /** The text; for email, its links already rewritten to Cairn's tracked redirects (when tracked). */
  body: string;
  /**
   * For email, when Cairn tracks the message: the body as an HTML fragment (escaped text, its links as
   * tracked anchors, then an open pixel). Send it as the HTML part beside `body` as the text part.
   */
  html?: string;
  /** The flow and the node of it that sent the message. */
  flow: { id: string; node: string };
  /**
   * The recipient when it is not the person: an employee a flow notifies about the person
   * (`notify_employees`). Send to this address or chat handle; `profile` is then null, and the person's
   * data is only what the message shows (masked unless the employee's role allows it).
   */
  to?: { id: string; name: string; email?: string; chatHandle?: string };
  /**
   * For email: images the HTML shows inline (`<img src="cid:…">`), such as a scheduled report's charts.
   * Send them as related parts with these Content-IDs.
   */
  attachments?: MessageAttachment[];
}

/** An inline image of a {@link DeliveryMessage}: its bytes as base64, named by its Content-ID. */
export interface MessageAttachment {
  cid: string;
  filename: string;
  contentType: string;
  /** The bytes, base64-encoded (JSON-safe, so a message can be sealed and queued like any other). */
  content: string;
}

/** One thing to deliver. */
export interface DeliveryItem {
  /**
   * The same on every attempt and replay: `<messageId>:<destination id>` for an event, the flow step's
   * `flow:<run>:<node>:<iteration>` for a message. Send it as an idempotency key.
   */
  idempotencyKey: string;
  /**
   * The event; for a flow's message (see `message`), a `track` event named `Flow Message` whose
   * properties hold the flow, subject and body, for plugins that only read events.
   */
  event: DeliveredEvent;
  profile: DeliveryProfile | null;
  /** 1 on the first try. */
  attempt: number;
  /** Set when a flow sends a message to the person (absent for events). */
  message?: DeliveryMessage;
}

/**
 * What happened to one item; a plugin may return one per item, in order (or nothing: all delivered).
 * `error` (with an excerpt of the receiver's answer) and `statusCode` (its HTTP status or SMTP reply
 * code) are kept on the ledger row as its last error: {@link errorOutcome} builds them from a thrown error.
 */
export type ItemOutcome =
  | { status: 'delivered'; detail?: string }
  | { status: 'retry'; error: string; retryAfter?: number; statusCode?: number }
  | { status: 'failed'; error: string; statusCode?: number };

/** A small persistent store per destination (tokens, cursors, ids a receiver handed back). */
export interface PluginKv {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  delete(key: string): Promise<void>;
}

/** A plugin's logger; lines are kept with the destination's deliveries. */
export interface PluginLog {
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

/** `fetch` with a timeout (default 10 s) and the delivery's abort signal already applied. */
export type PluginFetch = (input: string | URL, init?: RequestInit & { timeoutMs?: number }) => Promise<Response>;

/** Everything a plugin may use. It never sees the server, the database or the environment. */
export interface PluginContext<S> {
  settings: S;
  destination: { id: string; name: string };
  fetch: PluginFetch;
  log: PluginLog;
  kv: PluginKv;
  /** A signed one-click unsubscribe URL for this person on this channel (and topic, if any). */
  unsubscribeUrl(profile: DeliveryProfile, channel: Channel, topic?: string): string;
  now(): Date;
  /** Aborted when the server shuts down or the delivery times out. */
  signal: AbortSignal;
}

/** A person was erased (right to be forgotten): what a destination needs to delete them too. */
export interface ForgetRequest {
  /** Stable per erasure: the same on every retry, usable as an idempotency key. */
  erasureId: string;
  profileIds: string[];
  /** The erased identities in clear text: a destination can only delete what it is told. */
  identities: { type: string; value: string }[];
}

/** What an action's `run` gets: the destination's plugin context, and the call's idempotency key. */
export interface ActionContext<S> extends PluginContext<S> {
  /**
   * The same on every attempt and replay of the call (a flow's `flow:<run>:<node>:<iteration>`): send
   * it as the receiver's idempotency key, so a call retried after a lost answer does the thing once.
   */
  idempotencyKey: string;
  /** The person the flow runs for (a Cairn profile id). */
  profileId: string;
}

/** What an action returns: JSON, which later steps of a flow read (`keep` paths, `{{ run.x }}`). */
export type ActionOutput = null | boolean | number | string | ActionOutput[] | { [key: string]: ActionOutput };

/**
 * A named operation a flow's `action` node calls through a destination (issue a coupon, create a
 * ticket), beside `send`. `input` validates what the node renders (its errors fail the call, not
 * retried); `run` throws `RetryableError` to be called again later with the same key, `PermanentError`
 * (or anything after the retries) to take the node's `failed` edge.
 */
export interface PluginAction<S = unknown> {
  description?: string;
  /** Validates the rendered input; absent: any JSON object. */
  input?: z.ZodType;
  // Declared as a method, like `send`: an action typed with its own input stays assignable.
  run(input: never, ctx: ActionContext<S>): Promise<ActionOutput>;
}

// A function of the settings, declared through a method so that, like `send`, it is compared
// bivariantly: a plugin's definition stays assignable to `PluginDefinition` with unknown settings.
type OfSettings<S, R> = { of(settings: S): R }['of'];

/** The definition a plugin's `index.ts` default-exports through `definePlugin`. */
export interface PluginDefinition<S extends z.ZodType = z.ZodType> {
  /** Lower-case, `[a-z0-9-]`, unique among installed plugins. */
  name: string;
  version: string;
  description: string;
  /** Validates a destination's settings; its errors name the field. */
  settings: S;
  /** Consent purposes the profile must have granted, all of them, for anything to be sent. */
  purposes: readonly string[];
  /** Set for message channels: unsubscribes are enforced and unsubscribe URLs offered. */
  channel?: Channel;
  /** The event types it wants. */
  accepts: readonly AcceptedEvent[];
  /** Most items per `send` call (default 1). */
  batchSize?: number;
  /** `profile`: one profile's events are sent one batch at a time, in event order. */
  ordering?: 'profile' | 'none';
  /** Settings fields that hold secrets: masked when a destination is read back. */
  secrets?: readonly string[];
  /**
   * The contract version the plugin was written against ({@link PLUGIN_API_VERSION}); `definePlugin`
   * fills it in, and a server refuses at start a plugin whose version it does not support.
   */
  apiVersion?: number;
  /**
   * The batch form: sends up to `batchSize` items (in event order) and returns one outcome per item,
   * or nothing when all were delivered; a thrown error applies to every item. For receivers that take
   * a batch in one request. Give `send` or `sendOne`, not both.
   */
  send?(items: DeliveryItem[], ctx: PluginContext<z.infer<S>>): Promise<Array<ItemOutcome | undefined> | undefined>;
  /**
   * The per-item form: sends one item; returns nothing (delivered) or its outcome, or throws. The
   * framework runs the loop (`sendEach`): a thrown error becomes the item's outcome (`errorOutcome`),
   * a systemic one (`isSystemic`, or the `systemic` hook) stops the rest of the batch with `not sent: …`
   * outcomes, and for `ordering: 'profile'` a profile's later items wait behind its failed one.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: an async sendOne with no return statement returns Promise<void>
  sendOne?(item: DeliveryItem, ctx: PluginContext<z.infer<S>>): Promise<ItemOutcome | undefined | void>;
  /** Per-item form: items in flight at once (of different profiles when ordered); default 1. */
  parallel?: number | OfSettings<z.infer<S>, number>;
  /** Per-item form: overrides {@link isSystemic} (an error's own `systemic` option still wins). */
  systemic?(error: unknown): boolean;
  /**
   * Optional: delete an erased person at the destination. Throw `RetryableError` to be called again
   * later (with the same request), `PermanentError` to give up.
   */
  forget?(request: ForgetRequest, ctx: PluginContext<z.infer<S>>): Promise<void>;
  /**
   * Optional: operations flows call by name (`action` nodes), each returning JSON the flow keeps. The
   * server calls them through a destination of this plugin, with its settings, once per step (retried
   * with the same `ctx.idempotencyKey`).
   */
  actions?: Readonly<Record<string, PluginAction<z.infer<S>>>>;
}
