/**
 * `@cairn/node`: the server-side SDK of Cairn. See the package README for options, retries and the queue-full policy.
 *
 * @example
 * import { Cairn } from '@cairn/node';
 *
 * const cairn = new Cairn({ writeKey: 'wk_live_123', host: 'http://localhost:8787' });
 * cairn.identify({ userId: 'user_42', traits: { email: 'ada@example.com' } });
 * await cairn.close();
 *
 * @module
 */
export { Cairn } from './client.ts';
export type { CairnEvents, RetryEvent, SentEvent } from './emitter.ts';
export { CairnError, type CairnErrorCode, type CairnErrorDetails } from './errors.ts';
export type { CairnOptions } from './options.ts';
export type {
  AliasParams,
  CairnMessage,
  CommonFields,
  GroupParams,
  IdentifyParams,
  Identity,
  MessageType,
  PageParams,
  TrackParams,
} from './types.ts';
