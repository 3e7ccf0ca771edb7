import type { z } from 'zod';

/** One validation problem in words, at a dotted path (`rules.1.cmp`, `batch.3.timestamp`). */
export interface IssueText {
  path: string;
  message: string;
}

const A: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
  bigint: 'an integer',
  date: 'a date',
  null: 'null',
  tuple: 'a fixed-length array',
};

/** What a JSON value is, in the words of the messages above. */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' && Number.isInteger(v)) return `the number ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return A[typeof v] ?? typeof v;
}

/**
 * Zod's name of a type in words: `a string`, `an array`.
 *
 * @example
 * typeInWords('number'); // 'a number'
 */
export function typeInWords(type: string): string {
  return A[type] ?? type;
}

/** A given value as JSON, cut short. */
function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** The list of valid values, as a reader would type them: `=, !=, <` or `"a b", "c"`. */
function oneOf(values: readonly unknown[]): string {
  const plain = values.every((v) => typeof v === 'string' && /^[^\s,"]+$/.test(v));
  return values.map((v) => (plain ? String(v) : JSON.stringify(v))).join(', ');
}

function at(root: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let v: unknown = root;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !(key in (v as object))) return { found: false, value: undefined };
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return { found: v !== undefined, value: v };
}

/**
 * A zod issue in words that say what is valid: a missing field is `required` (with what it takes), a
 * wrong enum value names every valid one, a wrong type says what was given. `root` is the value that
 * was parsed (to tell a missing field from a wrong one); `hints` say what a missing field takes when
 * its schema cannot (`{ rule: 'a rule object ...' }`, keyed by the field's name).
 *
 * @example
 * const r = z.object({ cmp: z.enum(['=', '!=']) }).safeParse({ cmp: 'eq' });
 * issueMessage(r.error!.issues[0]!, { cmp: 'eq' }); // '"eq" is not valid; one of =, !='
 */
export function issueMessage(
  issue: z.core.$ZodIssue,
  root: unknown,
  hints: Readonly<Record<string, string>> = {},
): string {
  const { found, value } = at(root, issue.path);
  const field = issue.path[issue.path.length - 1];
  const hint = typeof field === 'string' ? hints[field] : undefined;
  // A message the schema wrote itself says more than any rewording: only zod's defaults are reworded.
  if ((issue.code === 'invalid_type' || issue.code === 'invalid_value') && !issue.message.startsWith('Invalid '))
    return issue.message;
  switch (issue.code) {
    case 'invalid_type': {
      const expected = A[issue.expected] ?? (issue.expected === 'nonoptional' ? undefined : issue.expected);
      if (!found) return `required${hint ? `: ${hint}` : expected ? `: ${expected}` : ''}`;
      return `expected ${hint ?? expected ?? 'another value'}, got ${kindOf(value)}`;
    }
    case 'invalid_value':
      if (!found) return `required: one of ${oneOf(issue.values)}`;
      return issue.values.length === 1
        ? `must be ${oneOf(issue.values)}, not ${shown(value)}`
        : `${shown(value)} is not valid; one of ${oneOf(issue.values)}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    default:
      return issue.message;
  }
}

/**
 * Every issue of a zod error in words ({@link issueMessage}), with its dotted path.
 *
 * @example
 * const r = schema.safeParse(body);
 * if (!r.success) throw apiError(400, 'invalid_request', describeIssues(r.error, body)[0].message);
 */
export function describeIssues(
  error: z.ZodError,
  root: unknown,
  hints: Readonly<Record<string, string>> = {},
): IssueText[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: issueMessage(i, root, hints) }));
}
