// `@cairn/plugin-api/testing`: what a plugin's own tests need besides runPlugin — a scripted HTTP
// receiver on loopback and a profile builder — so no plugin author hand-writes an HTTP server.
import type { DeliveryProfile } from './types.ts';

export {
  type AnswerScript,
  type ReceivedRequest,
  type Receiver,
  type ReceiverOptions,
  type ScriptedAnswer,
  startReceiver,
  type WaitOptions,
} from './testing/receiver.ts';

/**
 * A profile for tests: `id` as the id and user id, no contact points, no traits unless given.
 *
 * @example
 * await runPlugin(plugin, settings, [{}, {}], { profiles: [testProfile('a'), testProfile('b', { email: 'b@x.test' })] });
 */
export function testProfile(id: string, over: Partial<DeliveryProfile> = {}): DeliveryProfile {
  return { id, userId: id, email: null, phone: null, anonymousIds: [], traits: {}, ...over };
}
