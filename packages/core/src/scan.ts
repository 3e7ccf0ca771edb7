import { LIMITS } from './limits.ts';

/** Where a JSON value breaks a storage rule, and why. */
export interface ScanProblem {
  path: string;
  message: string;
}

// U+0000 cannot be stored in Postgres text or jsonb, and an unpaired UTF-16 surrogate makes jsonb
// reject the whole statement: both must be refused per event, before they can fail a group commit.
const BAD_CHARS_SOURCE = '\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
const BAD_CHARS = new RegExp(BAD_CHARS_SOURCE);
const BAD_CHARS_ALL = new RegExp(BAD_CHARS_SOURCE, 'g');

/**
 * Replaces what Postgres text cannot hold (NUL, unpaired surrogates) with U+FFFD, for text that must be
 * stored whatever it quotes (error reasons quoting client input).
 *
 * @example
 * storableText('bad \u0000 byte'); // 'bad \uFFFD byte'
 */
export function storableText(text: string): string {
  return text.replace(BAD_CHARS_ALL, '\uFFFD');
}

function describeBadString(s: string): string {
  return s.includes('\u0000')
    ? 'contains a NUL character (U+0000), which cannot be stored'
    : 'contains an unpaired UTF-16 surrogate (invalid Unicode)';
}

function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? (parent ? `${parent}.${key}` : key) : `${parent}[${JSON.stringify(key)}]`;
}

/**
 * Walks a parsed JSON value iteratively (no recursion, so a nesting bomb cannot overflow the stack)
 * and reports the first value Postgres could not store or that nests deeper than `maxDepth`.
 *
 * @example
 * scanJson({ a: 'x\u0000' }, 'batch[0]'); // { path: 'batch[0].a', message: 'contains a NUL ...' }
 */
export function scanJson(value: unknown, path: string, maxDepth: number = LIMITS.maxDepth): ScanProblem | null {
  const stack: Array<{ v: unknown; p: string; d: number }> = [{ v: value, p: path, d: 0 }];
  while (stack.length > 0) {
    const { v, p, d } = stack.pop()!;
    if (typeof v === 'string') {
      if (BAD_CHARS.test(v)) return { path: p, message: describeBadString(v) };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (d >= maxDepth) return { path: p, message: `nested deeper than ${maxDepth} levels` };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], p: childPath(p, i), d: d + 1 });
      continue;
    }
    for (const key of Object.keys(v)) {
      if (BAD_CHARS.test(key)) return { path: childPath(p, key), message: `key ${describeBadString(key)}` };
      stack.push({ v: (v as Record<string, unknown>)[key], p: childPath(p, key), d: d + 1 });
    }
  }
  return null;
}

export { childPath };
