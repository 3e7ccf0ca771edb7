import { type CairnEvents, createEmitter, type Listener } from './emitter.ts';
import { CairnError, type CairnErrorCode } from './errors.ts';
import { type PreparedMessage, prepareMessage } from './message.ts';
import {
  type CairnOptions,
  MAX_BATCH_BYTES,
  MAX_BATCH_EVENTS,
  type ResolvedOptions,
  resolveOptions,
} from './options.ts';
import { retryDelay } from './retry.ts';
import { postBatch } from './transport.ts';
import type {
  AliasParams,
  CairnMessage,
  GroupParams,
  IdentifyParams,
  MessageType,
  PageParams,
  TrackParams,
} from './types.ts';

/** A queued message; `seq` increases by one per accepted message, which is what `flush()` waits on. */
interface Queued extends PreparedMessage {
  seq: number;
}

/** `{"batch":[` + `],"sentAt":"…"}` with room to spare. */
const BODY_OVERHEAD_BYTES = 64;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The Cairn server-side client. Calls queue a message and return at once; messages go out in batches (by count,
 * by timer, or on `flush()`/`close()`), gzipped, one request at a time and in order, retried with backoff. Problems
 * are reported through `on('error')` / `onError`, never thrown.
 *
 * @example
 * import { Cairn } from '@cairn/node';
 *
 * const cairn = new Cairn({ writeKey: process.env.CAIRN_WRITE_KEY!, host: 'https://cairn.example.com' });
 * cairn.on('error', (err) => console.warn(err.code, err.message));
 * cairn.track({ userId: 'user_42', event: 'Order Completed', properties: { order_id: 'o_1', total: 42.5 } });
 * await cairn.close();
 */
export class Cairn {
  readonly #options: ResolvedOptions;
  readonly #emitter = createEmitter<CairnEvents>();
  #queue: Queued[] = [];
  #inFlight = 0;
  #lastSeq = 0;
  /** Every message with `seq <= #settledSeq` was delivered or definitively failed (batches settle in order). */
  #settledSeq = 0;
  /** A `flush()` asked that everything up to this seq be sent now rather than waiting for `flushAt`. */
  #forcedSeq = 0;
  #waiters: Array<{ seq: number; resolve: () => void }> = [];
  #pumping: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Validates the options once; throws `TypeError`/`RangeError` on a misconfiguration (the only thing that throws).
   *
   * @example
   * const cairn = new Cairn({ writeKey: 'wk_live_123', host: 'http://localhost:8787', flushAt: 50 });
   */
  constructor(options: CairnOptions) {
    this.#options = resolveOptions(options);
    if (options.onError) this.#emitter.on('error', options.onError);
  }

  /**
   * Records who a user is and their traits.
   *
   * @example
   * cairn.identify({ userId: 'user_42', traits: { email: 'ada@example.com', plan: 'pro' } });
   */
  identify(params: IdentifyParams): void {
    this.#enqueue('identify', params);
  }

  /**
   * Records an action a user performed.
   *
   * @example
   * cairn.track({ userId: 'user_42', event: 'Order Completed', properties: { order_id: 'o_1', total: 42.5 } });
   */
  track(params: TrackParams): void {
    this.#enqueue('track', params);
  }

  /**
   * Records a page view (e.g. rendered server-side).
   *
   * @example
   * cairn.page({ anonymousId: 'anon_1', name: 'Pricing', properties: { url: 'https://example.com/pricing' } });
   */
  page(params: PageParams): void {
    this.#enqueue('page', params);
  }

  /**
   * Records a screen view in a mobile or desktop app.
   *
   * @example
   * cairn.screen({ userId: 'user_42', name: 'Checkout' });
   */
  screen(params: PageParams): void {
    this.#enqueue('screen', params);
  }

  /**
   * Associates a user with a group (company, account, team).
   *
   * @example
   * cairn.group({ userId: 'user_42', groupId: 'acme', traits: { name: 'Acme Inc.', employees: 120 } });
   */
  group(params: GroupParams): void {
    this.#enqueue('group', params);
  }

  /**
   * Merges a previous identity into `userId`.
   *
   * @example
   * cairn.alias({ previousId: 'anon_1', userId: 'user_42' });
   */
  alias(params: AliasParams): void {
    this.#enqueue('alias', params);
  }

  /**
   * Subscribes to `error`, `sent` or `retry`; returns a function that unsubscribes. With no `error` listener (and no
   * `onError`), errors are written to `console.error`.
   *
   * @example
   * const off = cairn.on('error', (err) => console.warn(err.code, err.message, err.messages.length));
   * off();
   */
  on<K extends keyof CairnEvents>(event: K, listener: Listener<CairnEvents[K]>): () => void {
    return this.#emitter.on(event, listener);
  }

  /**
   * Sends everything queued so far and resolves once each of those messages was delivered or definitively failed
   * (failures go to `on('error')`). Never rejects.
   *
   * @example
   * cairn.track({ userId: 'user_42', event: 'Invoice Paid' });
   * await cairn.flush(); // e.g. at the end of a serverless handler
   */
  flush(): Promise<void> {
    const seq = this.#lastSeq;
    if (this.#settledSeq >= seq) return Promise.resolve();
    this.#forcedSeq = Math.max(this.#forcedSeq, seq);
    const done = new Promise<void>((resolve) => this.#waiters.push({ seq, resolve }));
    this.#pump();
    return done;
  }

  /**
   * Stops accepting messages (later calls report a `closed` error), then flushes. Resolves when every queued
   * message was delivered or definitively failed — after retries are exhausted if the server stays down. Idempotent.
   *
   * @example
   * process.on('SIGTERM', async () => {
   *   await cairn.close();
   *   process.exit(0);
   * });
   */
  close(): Promise<void> {
    if (!this.#closing) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#closing = this.flush();
    }
    return this.#closing;
  }

  #enqueue(type: MessageType, params: unknown): void {
    const prepared = prepareMessage(type, params);
    if (!prepared.ok) {
      this.#report(prepared.code, `${type} rejected: ${prepared.reason}`, prepared.message);
      return;
    }
    const { message } = prepared.value;
    if (this.#closing) {
      this.#report('closed', `${type} after close(): not sent`, message);
      return;
    }
    if (this.#queue.length + this.#inFlight >= this.#options.maxQueueSize) {
      this.#report('queue_full', `queue full (${this.#options.maxQueueSize} messages): ${type} dropped`, message);
      return;
    }
    this.#queue.push({ ...prepared.value, seq: ++this.#lastSeq });
    if (this.#queue.length >= this.#options.flushAt) this.#pump();
    else this.#schedule();
  }

  #report(code: Exclude<CairnErrorCode, 'delivery_failed'>, text: string, message: CairnMessage): void {
    this.#emitError(new CairnError(code, text, { messages: [message] }));
  }

  #emitError(error: CairnError): void {
    if (this.#emitter.emit('error', error) === 0) console.error(`[@cairn/node] ${error.code}: ${error.message}`);
  }

  /** Starts the flushInterval timer if messages wait and none is running. */
  #schedule(): void {
    if (this.#timer || this.#closing || this.#queue.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#options.flushInterval);
  }

  #shouldSend(): boolean {
    const head = this.#queue[0];
    return head !== undefined && (this.#queue.length >= this.#options.flushAt || head.seq <= this.#forcedSeq);
  }

  /** One sender at a time keeps batches in order, which also lets `flush()` track progress with one number. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = (async () => {
      while (this.#shouldSend()) {
        const batch = this.#take();
        this.#inFlight = batch.length;
        try {
          await this.#deliver(batch);
        } catch (cause) {
          // #deliver is written not to throw; if it ever does, fail the batch rather than hang flush() forever.
          const messages = batch.map((i) => i.message);
          this.#emitError(new CairnError('delivery_failed', `internal error: ${String(cause)}`, { messages, cause }));
        }
        this.#inFlight = 0;
        this.#settle(batch.at(-1)?.seq ?? this.#settledSeq);
      }
    })();
    void this.#pumping.then(() => {
      this.#pumping = undefined;
      // Something may have been queued or flushed between the loop's last check and now.
      if (this.#shouldSend()) this.#pump();
      else if (this.#queue.length === 0) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      } else this.#schedule();
    });
  }

  /** Takes the next batch: everything waiting, up to 2,500 messages and 500 KB. */
  #take(): Queued[] {
    let count = 0;
    let bytes = BODY_OVERHEAD_BYTES;
    for (const item of this.#queue) {
      const added = item.bytes + (count > 0 ? 1 : 0);
      if (count === MAX_BATCH_EVENTS || (count > 0 && bytes + added > MAX_BATCH_BYTES)) break;
      bytes += added;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  /** Sends one batch until it is acknowledged, finally refused, or out of retries. Never throws. */
  async #deliver(batch: Queued[]): Promise<void> {
    const jsons = batch.map((item) => item.json);
    const { maxRetries, retryBaseDelay, retryMaxDelay } = this.#options;
    for (let attempt = 1; ; attempt++) {
      const result = await postBatch(this.#options, jsons);
      if (result.ok) {
        this.#emitter.emit('sent', { messages: batch.map((i) => i.message), status: result.status, attempts: attempt });
        return;
      }
      if (!result.retryable || attempt > maxRetries) {
        const why = result.retryable ? `gave up after ${attempt} attempts` : 'refused by the server';
        this.#emitError(
          new CairnError('delivery_failed', `${batch.length} messages not delivered, ${why}: ${result.reason}`, {
            messages: batch.map((i) => i.message),
            status: result.status,
            attempts: attempt,
            serverError: result.serverError,
            cause: result.cause,
          }),
        );
        return;
      }
      const delayMs = retryDelay(attempt, result.retryAfterMs, retryBaseDelay, retryMaxDelay);
      const { reason, status } = result;
      this.#emitter.emit('retry', { attempt, delayMs, reason, status, batchSize: batch.length });
      await sleep(delayMs);
    }
  }

  #settle(seq: number): void {
    this.#settledSeq = seq;
    const done = this.#waiters.filter((w) => w.seq <= seq);
    this.#waiters = this.#waiters.filter((w) => w.seq > seq);
    for (const waiter of done) waiter.resolve();
  }
}
