import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signUnsubscribe, type UnsubscribeClaim, verifyUnsubscribe } from './unsubscribe.ts';

const SECRET = 'unsubscribe-test-secret-0123456789';
const EMAIL = 'ann.example+news@example.com';
const claim: UnsubscribeClaim = {
  p: '7d3f1c9e-2b8a-4c5d-9e6f-0a1b2c3d4e5f',
  c: 'email',
  t: 'newsletter',
  k: `email:${EMAIL}`,
};

/** A token as Cairn 0.1.0 made them: the claim in clear (base64url JSON) and an HMAC. */
function legacyToken(secret: string, c: UnsubscribeClaim): string {
  const payload = Buffer.from(JSON.stringify(c)).toString('base64url');
  return `${payload}.${createHmac('sha256', secret).update(`unsubscribe:${payload}`).digest('base64url')}`;
}

/** Every reading of a token someone might try: as is, URL-decoded, and its bytes as text under each decoding. */
function readings(token: string): string[] {
  const out = [token, decodeURIComponent(token)];
  for (const part of [token, ...token.split('.')]) {
    for (const from of ['base64url', 'base64', 'hex'] as const) {
      const bytes = Buffer.from(part, from);
      for (const as of ['utf8', 'latin1', 'utf16le', 'ascii'] as const) out.push(bytes.toString(as));
    }
  }
  return out.map((s) => s.toLowerCase());
}

describe('unsubscribe tokens', () => {
  it('round-trip', () => {
    expect(verifyUnsubscribe(SECRET, signUnsubscribe(SECRET, claim))).toEqual(claim);
  });

  it('carry no contact point or profile id in any decoding', () => {
    const token = signUnsubscribe(SECRET, claim);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const text of readings(token)) {
      for (const secretPart of [EMAIL, 'ann.example', 'example.com', claim.p, 'newsletter']) {
        expect(text).not.toContain(secretPart);
      }
    }
    // The old format fails the same check: the test can tell the two apart.
    expect(readings(legacyToken(SECRET, claim)).some((t) => t.includes(EMAIL))).toBe(true);
  });

  it('differ for each message, so two links cannot be matched to one person', () => {
    expect(signUnsubscribe(SECRET, claim)).not.toBe(signUnsubscribe(SECRET, claim));
  });

  it('refuse tampering, another secret and malformed input', () => {
    const token = signUnsubscribe(SECRET, claim);
    const flipped = Buffer.from(token, 'base64url');
    flipped[20]! ^= 1;
    expect(verifyUnsubscribe(SECRET, flipped.toString('base64url'))).toBeNull();
    expect(verifyUnsubscribe('another-secret-0123456789abcdef', token)).toBeNull();
    for (const bad of ['', 'x', 'a.b.c', `${token}.`, `${token}!`, 'A'.repeat(3000), token.slice(0, 30)]) {
      expect(verifyUnsubscribe(SECRET, bad)).toBeNull();
    }
  });

  it('still accept the signed tokens of 0.1.0 already sent in messages, and refuse them altered', () => {
    const old = legacyToken(SECRET, claim);
    expect(verifyUnsubscribe(SECRET, old)).toEqual(claim);
    const [payload, sig] = old.split('.');
    const forged = Buffer.from(JSON.stringify({ ...claim, k: 'email:someone@else.test' })).toString('base64url');
    expect(verifyUnsubscribe(SECRET, `${forged}.${sig}`)).toBeNull();
    expect(verifyUnsubscribe('another-secret-0123456789abcdef', `${payload}.${sig}`)).toBeNull();
  });
});
