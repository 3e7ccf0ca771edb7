import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';

/**
 * The keys PII is protected with, derived from server secrets with HKDF-SHA256: per secret an
 * AES-256-GCM key (named by a key id) for values, and one HMAC-SHA256 key for the blind index.
 * The first secret encrypts; every secret decrypts (rotation: the old ones stay listed until nothing
 * sealed under them is left). The blind-index key comes from the oldest secret so lookups keep
 * matching across a rotation (see docs/design/pii.md).
 */
export interface Keyring {
  /** Key id of the key new values are sealed with. */
  readonly currentKid: string;
  /** Every key id this ring can open. */
  readonly kids: readonly string[];
  /** @internal KeyObjects: a raw Buffer key costs a KeyObject per call (half of a seal's time, measured). */
  readonly enc: ReadonlyMap<string, KeyObject>;
  /** @internal */
  readonly index: KeyObject;
}

/** A sealed value: `enc:v1:<kid>:<base64url(iv | ciphertext | tag)>`. */
export const SEALED_PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SALT = 'cairn-pii';
// Binds every ciphertext to this format: a value sealed for another purpose does not open here.
const AAD = Buffer.from('cairn-pii-v1');

/** A sealed value that does not open: tampered, truncated, or sealed under a key not in the ring. */
export class PiiDecryptError extends Error {}

function derive(secret: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from(SALT), Buffer.from(info), 32));
}

const keyOf = (secret: string, info: string) => createSecretKey(derive(secret, info));

function kidOf(secret: string): string {
  // Public, short, stable: names the key without revealing anything usable about it.
  return derive(secret, 'key id').subarray(0, 6).toString('base64url');
}

/**
 * Builds the keyring from the current secret and older ones (newest first).
 *
 * @example
 * const ring = createKeyring(config.secret, config.pii.oldSecrets);
 */
export function createKeyring(current: string, older: readonly string[] = []): Keyring {
  const secrets = [current, ...older.filter((s) => s && s !== current)];
  const enc = new Map<string, KeyObject>();
  for (const s of secrets) enc.set(kidOf(s), keyOf(s, 'aes-256-gcm value key'));
  return Object.freeze({
    currentKid: kidOf(current),
    kids: Object.freeze([...enc.keys()]),
    enc,
    index: keyOf(secrets.at(-1)!, 'hmac-sha256 blind index key'),
  });
}

/**
 * Seals bytes with AES-256-GCM under the ring's current key and a random 12-byte IV.
 *
 * @example
 * sealBytes(ring, Buffer.from('ann@example.com')); // 'enc:v1:Ab12Cd34:...'
 */
export function sealBytes(ring: Keyring, plain: Uint8Array): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', ring.enc.get(ring.currentKid)!, iv);
  cipher.setAAD(AAD);
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  return `${SEALED_PREFIX}${ring.currentKid}:${Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64url')}`;
}

/**
 * Opens a sealed value. Throws {@link PiiDecryptError} when it was tampered with or its key id is not
 * in the ring.
 *
 * @example
 * openBytes(ring, sealBytes(ring, Buffer.from('x'))).toString(); // 'x'
 */
export function openBytes(ring: Keyring, sealed: string): Buffer {
  if (!sealed.startsWith(SEALED_PREFIX)) throw new PiiDecryptError('not a sealed value');
  const rest = sealed.slice(SEALED_PREFIX.length);
  const colon = rest.indexOf(':');
  const kid = rest.slice(0, colon);
  const key = colon > 0 ? ring.enc.get(kid) : undefined;
  if (!key) throw new PiiDecryptError(`sealed under key id ${kid || '?'}, which is not in the keyring`);
  const data = Buffer.from(rest.slice(colon + 1), 'base64url');
  if (data.length < IV_BYTES + TAG_BYTES) throw new PiiDecryptError('sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
  decipher.setAAD(AAD);
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new PiiDecryptError(`sealed value under key id ${kid} failed authentication (tampered or wrong key)`);
  }
}

/**
 * Seals a JSON value (its JSON text), so strings, numbers and objects (an address) round-trip.
 *
 * @example
 * const s = seal(ring, 'ann@example.com'); // 'enc:v1:...'
 */
export function seal(ring: Keyring, value: unknown): string {
  return sealBytes(ring, Buffer.from(JSON.stringify(value) ?? 'null', 'utf8'));
}

/**
 * Opens a value {@link seal} made.
 *
 * @example
 * open(ring, seal(ring, { city: 'Oslo' })); // { city: 'Oslo' }
 */
export function open(ring: Keyring, sealed: string): unknown {
  return JSON.parse(openBytes(ring, sealed).toString('utf8'));
}

/**
 * Whether a value is sealed (a string in the sealed format).
 *
 * @example
 * isSealed('enc:v1:Ab12Cd34:xyz'); // true
 */
export function isSealed(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(SEALED_PREFIX);
}

/**
 * The blind index of a normalised value: HMAC-SHA256 under the index key, over `type:value`, so the
 * same address typed as email and as phone never collide. Deterministic: equal inputs give equal
 * indexes, which is what lookups and joins need; without the key it reveals nothing.
 *
 * @example
 * blindIndex(ring, 'email', 'ann@example.com'); // 43 base64url characters
 */
export function blindIndex(ring: Keyring, type: string, normalized: string): string {
  return createHmac('sha256', ring.index).update(`${type}:${normalized}`).digest('base64url');
}
