import { describe, expect, it } from 'vitest';
import { blindIndex, createKeyring, isSealed, open, openBytes, PiiDecryptError, seal, sealBytes } from './crypto.ts';
import { createPii, maskPayload, maskValue } from './index.ts';

const SECRET = 'test-secret-0123456789abcdef';
const OTHER = 'another-secret-0123456789abcdef';

describe('sealing (AES-256-GCM with a key id)', () => {
  const ring = createKeyring(SECRET);

  it('round-trips JSON values and never shows the clear text', () => {
    for (const v of ['ann@example.com', '+4915112344567', 42, { street: '1 Main St', city: 'Oslo' }]) {
      const s = seal(ring, v);
      expect(isSealed(s)).toBe(true);
      expect(s.startsWith(`enc:v1:${ring.currentKid}:`)).toBe(true);
      expect(s).not.toContain('ann');
      expect(open(ring, s)).toEqual(v);
    }
  });

  it('uses a fresh IV each time: the same value seals differently', () => {
    expect(seal(ring, 'ann@example.com')).not.toBe(seal(ring, 'ann@example.com'));
  });

  it('detects tampering with the ciphertext, the tag, the IV or the key id', () => {
    const s = sealBytes(ring, Buffer.from('ann@example.com'));
    const prefix = s.slice(0, s.lastIndexOf(':') + 1);
    const data = Buffer.from(s.slice(prefix.length), 'base64url');
    for (const at of [0, 12, data.length - 1]) {
      const bad = Buffer.from(data);
      bad[at]! ^= 1;
      expect(() => openBytes(ring, prefix + bad.toString('base64url'))).toThrow(PiiDecryptError);
    }
    expect(() => openBytes(ring, prefix + data.subarray(0, 20).toString('base64url'))).toThrow(/truncated/);
    expect(() => openBytes(ring, s.replace(ring.currentKid, 'AAAAAAAA'))).toThrow(/not in the keyring/);
  });

  it('refuses to open under the wrong key', () => {
    const s = seal(ring, 'ann@example.com');
    const wrong = createKeyring(OTHER);
    // Same key id forged onto another ring's ciphertext: authentication fails.
    const forged = seal(wrong, 'ann@example.com').replace(wrong.currentKid, ring.currentKid);
    expect(() => open(wrong, s)).toThrow(/not in the keyring/);
    expect(() => open(ring, forged)).toThrow(/failed authentication/);
  });

  it('keeps opening values sealed under older secrets after a rotation, and seals new ones under the new key', () => {
    const old = seal(ring, 'ann@example.com');
    const rotated = createKeyring(OTHER, [SECRET]);
    expect(rotated.currentKid).not.toBe(ring.currentKid);
    expect(rotated.kids).toEqual([rotated.currentKid, ring.currentKid]);
    expect(open(rotated, old)).toBe('ann@example.com');
    const fresh = seal(rotated, 'bob@example.com');
    expect(fresh.startsWith(`enc:v1:${rotated.currentKid}:`)).toBe(true);
    expect(() => open(ring, fresh)).toThrow(PiiDecryptError);
  });

  it('blind index: deterministic, keyed, typed, and stable across a rotation', () => {
    const a = blindIndex(ring, 'email', 'ann@example.com');
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(blindIndex(ring, 'email', 'ann@example.com')).toBe(a);
    expect(blindIndex(ring, 'phone', 'ann@example.com')).not.toBe(a);
    expect(blindIndex(createKeyring(OTHER), 'email', 'ann@example.com')).not.toBe(a);
    // The index key comes from the oldest secret: identities keep matching after CAIRN_SECRET rotates.
    expect(blindIndex(createKeyring(OTHER, [SECRET]), 'email', 'ann@example.com')).toBe(a);
  });

  it('derives separate keys for values and for the index', () => {
    // Not observable through the API except that the index is not an HMAC under the value key's kid.
    expect(ring.kids).toHaveLength(1);
    expect(createKeyring(SECRET).currentKid).toBe(ring.currentKid);
  });
});

describe('createPii', () => {
  const pii = createPii({ secret: SECRET });

  it('seals the configured traits where events carry them, and opens them back', () => {
    const payload = {
      type: 'identify',
      userId: 'u1',
      traits: { email: 'Ann@Example.com', plan: 'pro', $set_once: { phone: '+49 151 1234 4567' } },
      properties: { email: 'ann@example.com', total: 3 },
      context: {
        ip: '127.0.0.1',
        traits: { id_number: 'X123', address: { city: 'Oslo' } },
        externalIds: [{ id: 'ann@example.com', type: 'email', collection: 'users', encoding: 'none' }],
      },
    };
    const sealed = pii.sealPayload(payload);
    const text = JSON.stringify(sealed);
    for (const clear of ['Ann@Example.com', 'ann@example.com', '1234', 'X123', 'Oslo'])
      expect(text).not.toContain(clear);
    expect(sealed.userId).toBe('u1');
    expect((sealed.traits as { plan: string }).plan).toBe('pro');
    expect(payload.traits.email).toBe('Ann@Example.com'); // the input is not mutated
    expect(pii.openPayload(sealed)).toEqual(payload);
    // Sealing twice changes nothing; a payload without sensitive fields is returned as is.
    expect(pii.sealPayload(sealed)).toBe(sealed);
    const plain = { type: 'track', event: 'x', properties: { a: 1 } };
    expect(pii.sealPayload(plain)).toBe(plain);
  });

  it('opens a sealed value again the same way; objects come fresh, so no caller changes another one', () => {
    const email = pii.sealValue('email', 'ann@example.com') as string;
    const address = pii.sealValue('address', { city: 'Oslo' }) as string;
    for (let i = 0; i < 3; i++) expect(pii.openValue(email)).toBe('ann@example.com');
    const a = pii.openValue(address) as { city: string };
    a.city = 'Bergen';
    expect(pii.openValue(address)).toEqual({ city: 'Oslo' });
    // Another server secret opens nothing, whatever this instance opened before.
    const other = createPii({ secret: 'another-secret-another-secret-0123' });
    expect(() => other.openValue(email)).toThrow(/not in the keyring/);
    // A tampered value never opens, before or after the genuine one did.
    // (The second-to-last character is changed: the last one of base64 may carry only padding bits.)
    const tampered = `${email.slice(0, -2)}${email.at(-2) === 'A' ? 'B' : 'A'}${email.slice(-1)}`;
    expect(() => pii.openValue(tampered)).toThrow();
    expect(() => pii.openValue(tampered)).toThrow();
  });

  it('honours CAIRN_PII_TRAITS', () => {
    const only = createPii({ secret: SECRET, traits: ['phone'] });
    const sealed = only.sealPayload({ traits: { email: 'a@b.test', phone: '+1555' } });
    expect((sealed.traits as { email: string }).email).toBe('a@b.test');
    expect(isSealed((sealed.traits as { phone: string }).phone)).toBe(true);
    expect(only.identityKey({ type: 'email', value: 'a@b.test' })).toBe('email:a@b.test');
  });

  it('keys identities and contact points by blind index, normalising first', () => {
    const key = pii.identityKey({ type: 'email', value: 'ann@example.com' });
    expect(key).toMatch(/^email:[A-Za-z0-9_-]{43}$/);
    expect(pii.lookupKey('email', ' ANN@example.com ')).toBe(key);
    expect(pii.contactKey('email:Ann@Example.com')).toBe(key);
    expect(pii.contactKey(key)).toBe(key);
    expect(pii.lookupKey('phone', '+49 (151) 1234-4567')).toBe(
      pii.identityKey({ type: 'phone', value: '+4915112344567' }),
    );
    expect(pii.identityKey({ type: 'userId', value: 'u1' })).toBe('userId:u1');
    expect(pii.identityKey({ type: 'x:id_number', value: 'X1' })).toMatch(/^x:id_number:[A-Za-z0-9_-]{43}$/);
    expect(pii.contactKey('userId:u1')).toBe('userId:u1');
    expect(pii.openValue(pii.identityValue({ type: 'email', value: 'ann@example.com' }))).toBe('ann@example.com');
  });
});

describe('masking', () => {
  it('masks emails, phones, other values and objects', () => {
    expect(maskValue('ann@example.com')).toBe('a***@example.com');
    expect(maskValue('+4915112344567')).toBe('+*********4567');
    expect(maskValue('X12345678')).toBe('*****5678');
    expect(maskValue('abc')).toBe('****');
    expect(maskValue({ city: 'Oslo' })).toBe('***');
    expect(maskValue(null)).toBe(null);
  });

  it('masks a payload in the places sealing covers', () => {
    const masked = maskPayload(
      { traits: { email: 'ann@example.com', plan: 'pro' }, properties: { phone: '+4915112344567' } },
      (k) => k === 'email' || k === 'phone',
    );
    expect(masked).toEqual({
      traits: { email: 'a***@example.com', plan: 'pro' },
      properties: { phone: '+*********4567' },
    });
  });
});
