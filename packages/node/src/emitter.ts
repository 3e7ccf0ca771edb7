import type { CairnError } from './errors.ts';
import type { CairnMessage } from './types.ts';

/**
 * Payload of the `sent` event: a batch the server acknowledged with 2xx.
 *
 * @example
 * cairn.on('sent', ({ messages, attempts }: SentEvent) => metrics.count('cairn.sent', messages.length, { attempts }));
 */
export interface SentEvent {
  messages: CairnMessage[];
  status: number;
  attempts: number;
}

/**
 * Payload of the `retry` event: a batch failed in a retryable way and will be sent again after `delayMs`.
 *
 * @example
 * cairn.on('retry', ({ attempt, delayMs, reason }: RetryEvent) => {
 *   log.debug(`attempt ${attempt} failed (${reason}); retrying in ${delayMs} ms`);
 * });
 */
export interface RetryEvent {
  /** The attempt that failed (1 = the first send). */
  attempt: number;
  delayMs: number;
  reason: string;
  status: number | undefined;
  batchSize: number;
}

/**
 * The events a {@link Cairn} client emits, by name.
 *
 * @example
 * const name: keyof CairnEvents = 'error';
 */
export interface CairnEvents {
  error: CairnError;
  sent: SentEvent;
  retry: RetryEvent;
}

export type Listener<T> = (payload: T) => void;

/**
 * A minimal typed emitter. Unlike node:events, an `error` with no listener never throws, and a throwing listener
 * cannot break delivery.
 */
export function createEmitter<E extends object>() {
  const listeners = new Map<keyof E, Set<Listener<never>>>();
  return {
    on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
      const set = listeners.get(event) ?? new Set();
      set.add(listener as Listener<never>);
      listeners.set(event, set);
      return () => void set.delete(listener as Listener<never>);
    },
    /** Returns how many listeners received the payload. */
    emit<K extends keyof E>(event: K, payload: E[K]): number {
      const set = listeners.get(event);
      const snapshot = [...(set ?? [])];
      for (const listener of snapshot) {
        try {
          (listener as Listener<E[K]>)(payload);
        } catch (error) {
          console.error(`[@cairn/node] a '${String(event)}' listener threw:`, error);
        }
      }
      return snapshot.length;
    },
  };
}
