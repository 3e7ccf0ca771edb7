import { afterEach } from 'vitest';
import { Cairn, type CairnError, type CairnOptions, type RetryEvent, type SentEvent } from '../src/index.ts';
import { type Receiver, startReceiver } from './receiver.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A receiver plus a client pointed at it, recording every error, retry and sent event. Defaults keep tests quick:
 * no automatic timer flush in practice (1 h) and near-zero backoff; tests override what they exercise.
 */
export async function setup(options: Partial<CairnOptions> = {}) {
  const receiver: Receiver = await startReceiver();
  const client = new Cairn({
    writeKey: 'wk_test',
    host: receiver.url,
    flushInterval: 3_600_000,
    retryBaseDelay: 1,
    retryMaxDelay: 5,
    timeout: 2_000,
    ...options,
  });
  const errors: CairnError[] = [];
  const retries: RetryEvent[] = [];
  const sent: SentEvent[] = [];
  client.on('error', (e) => errors.push(e));
  client.on('retry', (r) => retries.push(r));
  client.on('sent', (s) => sent.push(s));
  cleanups.push(async () => {
    await client.close();
    await receiver.close();
  });
  return { receiver, client, errors, retries, sent };
}

/** Tracks `n` events and returns their messageIds (set by the caller so the test knows them up front). */
export function trackMany(client: Cairn, n: number, extra: Record<string, unknown> = {}): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const messageId = `m-${i}-${Math.random().toString(36).slice(2)}`;
    ids.push(messageId);
    client.track({ userId: 'u1', event: 'Test Event', messageId, properties: { i, ...extra } });
  }
  return ids;
}
