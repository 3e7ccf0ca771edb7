// Stage 2's shared types: a leaf module (types only), so its files import them without a cycle.
import type { IdentityOptions, JsonObject, TraitOptions } from '@cairn/core';
import type { Logger } from '../../log.ts';
import type { Pii } from '../../pii/index.ts';

/** Settings of stage 2. */
export interface IdentifyContext {
  identity: IdentityOptions;
  traits: TraitOptions;
  /** Reloads the data-quality rules `traits` carries (the worker, before each batch). */
  refreshTraitRules?: () => Promise<void>;
  /** Consent purposes recorded from events; null = any purpose name. */
  purposes: readonly string[] | null;
  /** Key of the suppression list's keyed hashes. */
  secret: string;
  /** PII at rest: sealed payloads and traits, blind-indexed identity keys. */
  pii: Pii;
  log: Logger;
  /** Workers per process. */
  concurrency: number;
}

/**
 * A stored event as stage 2 reads it (payload opened), with its identities' stored keys (canonical
 * order; sensitive ones by blind index), their set's hash, and the stored value of each sensitive one.
 */
export interface LoadedEvent {
  id: string;
  ts: number;
  type: string;
  payload: JsonObject;
  keys: string[];
  setHash: string | null;
  sealed: [key: string, value: string][];
}
