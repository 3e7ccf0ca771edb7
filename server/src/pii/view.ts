import type { JsonObject } from '@cairn/core';
import type { Principal } from '../auth/keys.ts';
import { can } from '../auth/middleware.ts';
import { maskPayload, maskValue, type Pii } from './index.ts';

/** How one caller sees PII: opened for roles with `pii:read`, opened then masked for the others. */
export interface PiiView {
  /** Whether the caller sees clear values. */
  readonly clear: boolean;
  /** A stored trait value of `key`. */
  value(key: string, stored: unknown): unknown;
  /** A stored event payload. */
  payload(stored: JsonObject): JsonObject;
  /** A stored `identities.value` of `type`. */
  identity(type: string, stored: string): string;
}

/**
 * The view of PII for the principal of a request.
 *
 * @example
 * const view = piiView(deps.pii, c.get('principal'));
 * const traits = Object.fromEntries(rows.map((t) => [t.key, view.value(t.key, t.value)]));
 */
export function piiView(pii: Pii, principal: Pick<Principal, 'role'> | undefined): PiiView {
  const clear = !!principal && can(principal.role, 'pii:read');
  return {
    clear,
    value(key, stored) {
      const v = pii.openValue(stored);
      return clear || !pii.isSensitive(key) ? v : maskValue(v);
    },
    payload(stored) {
      const p = pii.openPayload(stored);
      return clear ? p : maskPayload(p, pii.isSensitive);
    },
    identity(type, stored) {
      const v = String(pii.openValue(stored));
      return clear || !pii.blinds(type) ? v : String(maskValue(v));
    },
  };
}

/**
 * A view that shows stored values as they are (sealed): for callers that keep only non-PII parts of
 * what they read (the audit log's copy of a profile's consent).
 *
 * @example
 * const consent = (await profileView(sql, id, STORED_VIEW))?.consent;
 */
export const STORED_VIEW: PiiView = Object.freeze({
  clear: false,
  value: (_key: string, stored: unknown) => stored,
  payload: (stored: JsonObject) => stored,
  identity: (_type: string, stored: string) => stored,
});
