// Where a rule's problem is: the API names it by a path inside the rule (`rules.1.value`, or
// `rule.rules[1].value` in a request error); the editor shows it beside that condition in the form and
// at that line of the JSON.
import { ApiError } from '../api.ts';

/** One problem with the rule, at a path inside it (`[]` is the rule as a whole). */
export interface RuleIssue {
  path: (string | number)[];
  message: string;
}

/**
 * A path as the API writes it, split into keys and indexes, without the leading `rule`.
 *
 * @example
 * splitPath('rule.rules[1].value'); // ['rules', 1, 'value']
 */
export function splitPath(path: string): (string | number)[] {
  const parts = path
    .replaceAll(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return parts[0] === 'rule' ? parts.slice(1) : parts;
}

const REFERS = /refers to (audience|tag|computed) ([a-z][a-z0-9_]*)/;

/**
 * The problems an API error reports about a rule: its per-field details, else the path at the head of
 * its message, else the condition that names a missing audience or tag, else the rule as a whole.
 *
 * @example
 * ruleIssues(err, rule); // [{ path: ['rules', 1, 'value'], message: 'expected a number' }]
 */
export function ruleIssues(error: Error, rule: unknown): RuleIssue[] {
  if (!(error instanceof ApiError) || error.status !== 400) return [];
  const details = Array.isArray(error.details) ? (error.details as { path?: string; message?: string }[]) : [];
  const own = error.code === 'invalid_rule';
  const ruleDetails = details.filter((d) => own || (d.path ?? '').startsWith('rule'));
  if (ruleDetails.length) return ruleDetails.map((d) => ({ path: splitPath(d.path ?? ''), message: d.message ?? '' }));
  if (!own) return [];
  const head = /^rule((?:\.[^\s:]+)?): (.*)$/s.exec(error.message);
  if (head) return [{ path: splitPath(head[1] ?? ''), message: head[2]! }];
  const ref = REFERS.exec(error.message);
  const at = ref ? findLeaf(rule, ref[1]!, ref[2]!) : null;
  return [{ path: at ?? [], message: error.message.replace(/^rule /, '') }];
}

// The path of the first leaf reading `key` (a missing audience, tag or computed trait).
function findLeaf(rule: unknown, kind: string, key: string, at: (string | number)[] = []): (string | number)[] | null {
  if (!rule || typeof rule !== 'object') return null;
  const r = rule as Record<string, unknown>;
  if (kind === 'audience' && r.op === 'in_audience' && r.audience === key) return at;
  if (kind === 'tag' && r.op === 'has_tag' && r.tag === key) return at;
  if (kind === 'computed' && r.op === 'computed' && String(r.trait).split('.')[0] === key) return at;
  if (Array.isArray(r.rules)) {
    for (const [i, child] of r.rules.entries()) {
      const found = findLeaf(child, kind, key, [...at, 'rules', i]);
      if (found) return found;
    }
  }
  return r.rule ? findLeaf(r.rule, kind, key, [...at, 'rule']) : null;
}

/**
 * The offset in `text` (well-formed JSON) where each path starts: a member at its key, an element at
 * its value. Paths are joined with dots (`rules.1.value`); the root is `''`.
 *
 * @example
 * jsonPositions('{"op": "and"}').get('op'); // 1
 */
export function jsonPositions(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const str = () => {
    let s = '';
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      s += text[i++];
    }
    i++;
    return s;
  };
  const join = (path: string, k: string | number) => (path ? `${path}.${k}` : String(k));
  const value = (path: string, start?: number) => {
    ws();
    if (!out.has(path)) out.set(path, start ?? i);
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      for (let n = 0; text[i] !== close && i < text.length; n++) {
        ws();
        if (c === '{') {
          const at = i;
          const k = str();
          ws();
          i++; // :
          value(join(path, k), at);
        } else value(join(path, n));
        ws();
        if (text[i] === ',') i++;
      }
      i++;
    } else if (c === '"') str();
    else while (i < text.length && !/[\s,\]}]/.test(text[i]!)) i++;
  };
  value('');
  return out;
}

/**
 * The 1-based line of `text` where the value at `path` is (its nearest existing ancestor when the value
 * is missing, as for a required field).
 *
 * @example
 * lineOf('{\n  "op": "and",\n  "rules": []\n}', ['rules']); // 3
 */
export function lineOf(text: string, path: (string | number)[]): number {
  const positions = jsonPositions(text);
  for (let n = path.length; n >= 0; n--) {
    const at = positions.get(path.slice(0, n).join('.'));
    if (at !== undefined) return text.slice(0, at).split('\n').length;
  }
  return 1;
}

/**
 * Parses the rule's JSON text; a syntax error comes with its line.
 *
 * @example
 * parseRule('{"op":'); // { error: 'Unexpected end of JSON input', line: 1 }
 */
export function parseRule(text: string): { rule: unknown } | { error: string; line: number } {
  try {
    return { rule: JSON.parse(text) };
  } catch (e) {
    const message = (e as Error).message;
    const pos = /position (\d+)/.exec(message);
    const line = pos ? text.slice(0, Number(pos[1])).split('\n').length : text.split('\n').length;
    return { error: message, line };
  }
}

/** Whether `path` lies at or under `prefix`. */
export function under(path: (string | number)[], prefix: (string | number)[]): boolean {
  return prefix.every((p, i) => path[i] === p);
}
