import { describe, expect, it } from 'vitest';
import { originAllowed } from './directory.ts';

// originAllowed decides which browser origins a source answers (CORS and the ingest check): a wrong
// `true` lets another site send with a public write key, a wrong `false` silently drops a site's events.

describe('originAllowed', () => {
  it('an empty list and `*` allow any origin, even the opaque `null` of sandboxed frames and file://', () => {
    expect(originAllowed([], 'https://anywhere.test')).toBe(true);
    expect(originAllowed(['*'], 'https://anywhere.test')).toBe(true);
    expect(originAllowed(['https://shop.test', '*'], 'null')).toBe(true);
    expect(originAllowed([], 'null')).toBe(true);
  });

  it('an exact entry allows that origin only: scheme, host and port all count', () => {
    const allowed = ['https://shop.test', 'http://localhost:3000'];
    expect(originAllowed(allowed, 'https://shop.test')).toBe(true);
    expect(originAllowed(allowed, 'http://localhost:3000')).toBe(true);
    expect(originAllowed(allowed, 'http://shop.test')).toBe(false); // another scheme
    expect(originAllowed(allowed, 'https://shop.test:8443')).toBe(false); // another port
    expect(originAllowed(allowed, 'http://localhost:3001')).toBe(false);
    expect(originAllowed(allowed, 'http://localhost')).toBe(false);
    expect(originAllowed(allowed, 'https://www.shop.test')).toBe(false); // a subdomain needs a wildcard
  });

  it('a leading wildcard label covers subdomains at any depth and the bare domain', () => {
    const allowed = ['https://*.shop.test'];
    expect(originAllowed(allowed, 'https://www.shop.test')).toBe(true);
    expect(originAllowed(allowed, 'https://shop.test')).toBe(true);
    expect(originAllowed(allowed, 'https://eu.cdn.shop.test')).toBe(true);
  });

  it('a wildcard never matches a look-alike domain, another scheme or another port', () => {
    const allowed = ['https://*.shop.test'];
    expect(originAllowed(allowed, 'https://evilshop.test')).toBe(false); // no dot before the domain
    expect(originAllowed(allowed, 'https://www.shop.test.evil.test')).toBe(false);
    expect(originAllowed(allowed, 'http://www.shop.test')).toBe(false);
    expect(originAllowed(allowed, 'https://www.shop.test:8443')).toBe(false);
    expect(originAllowed(['https://*.shop.test:8443'], 'https://www.shop.test:8443')).toBe(true);
    expect(originAllowed(['https://*.shop.test:8443'], 'https://www.shop.test')).toBe(false);
    // A path, credentials or a port where the star's labels go is not a subdomain.
    expect(originAllowed(allowed, 'https://evil.test/x.shop.test')).toBe(false);
    expect(originAllowed(allowed, 'https://user@x.shop.test')).toBe(false);
    expect(originAllowed(allowed, 'https://evil.test:1.shop.test')).toBe(false);
    expect(originAllowed(allowed, 'https://a.b-c.shop.test')).toBe(true);
  });

  it('a wildcard elsewhere than the leading label is a literal, not a pattern', () => {
    expect(originAllowed(['https://shop.*.test'], 'https://shop.eu.test')).toBe(false);
    expect(originAllowed(['*.shop.test'], 'https://www.shop.test')).toBe(false); // no scheme: no pattern
  });

  it('IPv6 and IP origins match exactly, port included', () => {
    expect(originAllowed(['http://[::1]:8080'], 'http://[::1]:8080')).toBe(true);
    expect(originAllowed(['http://[::1]:8080'], 'http://[::1]:8081')).toBe(false);
    expect(originAllowed(['http://[::1]:8080'], 'http://[::1]')).toBe(false);
    expect(originAllowed(['http://127.0.0.1:8080'], 'http://127.0.0.1:8080')).toBe(true);
    expect(originAllowed(['https://*.shop.test'], 'http://[::1]:8080')).toBe(false);
  });

  it('an origin that is not one (`null`, empty, a bare host, a trailing slash) matches no specific entry', () => {
    const allowed = ['https://shop.test', 'https://*.shop.test'];
    expect(originAllowed(allowed, 'null')).toBe(false);
    expect(originAllowed(allowed, '')).toBe(false);
    expect(originAllowed(allowed, 'shop.test')).toBe(false);
    expect(originAllowed(allowed, 'https://shop.test/')).toBe(false);
    expect(originAllowed(allowed, 'HTTPS://SHOP.TEST')).toBe(false); // browsers send lower case
  });
});
