/**
 * Message templates: text with `{{ root.path }}` variables, optionally `{{ root.path | default: "text" }}`.
 * Roots: `traits` (the profile's traits), `computed` (computed traits), `event` (the event that
 * started the run: `event.properties.coupon`), `run` (the run's data), `profile` (`profile.id`); in a
 * `notify_employees` message also `employee` (the employee it is addressed to: `employee.name`).
 */
import { valueAt } from '../rules/values.ts';
import type { JsonValue } from './ast.ts';
import type { Step } from './state.ts';

/** The roots a template variable can start with. */
export const TEMPLATE_ROOTS = ['traits', 'computed', 'event', 'run', 'profile'] as const;
export type TemplateRoot = (typeof TEMPLATE_ROOTS)[number];

/** One `{{ ... }}` of a template. */
export interface TemplateVariable {
  /** The text between the braces, trimmed. */
  source: string;
  root: string;
  path: string[];
  fallback?: string;
}

type Part = string | TemplateVariable;

const VARIABLE = /^([A-Za-z_$][\w$-]*(?:\.[\w$-]+)*)\s*(?:\|\s*default:\s*"((?:[^"\\]|\\.)*)")?$/;

/**
 * A template's text and variables, or the problems with its syntax (an unclosed `{{`, a variable
 * that is no dot path, an unknown filter).
 *
 * @example
 * parseTemplate('Hi {{ traits.first_name | default: "there" }}').variables[0]; // { root: 'traits', path: ['first_name'], fallback: 'there', ... }
 */
export function parseTemplate(text: string): { parts: Part[]; variables: TemplateVariable[]; errors: string[] } {
  const parts: Part[] = [];
  const variables: TemplateVariable[] = [];
  const errors: string[] = [];
  let at = 0;
  while (at < text.length) {
    const open = text.indexOf('{{', at);
    if (open < 0) break;
    const close = text.indexOf('}}', open + 2);
    if (close < 0) {
      errors.push(`"{{" at character ${open} is never closed with "}}"`);
      break;
    }
    if (open > at) parts.push(text.slice(at, open));
    const source = text.slice(open + 2, close).trim();
    const m = VARIABLE.exec(source);
    if (!m)
      errors.push(`{{ ${source} }} is not a variable: write {{ root.path }} or {{ root.path | default: "text" }}`);
    else {
      const [root, ...path] = m[1]!.split('.');
      const variable: TemplateVariable = { source, root: root!, path };
      if (m[2] !== undefined) variable.fallback = JSON.parse(`"${m[2]}"`) as string;
      variables.push(variable);
      parts.push(variable);
    }
    at = close + 2;
  }
  if (at < text.length) parts.push(text.slice(at));
  return { parts, variables, errors };
}

/** What a template's variables read. */
export interface TemplateScope {
  traits: Record<string, JsonValue>;
  computed?: Record<string, JsonValue>;
  event?: Record<string, unknown>;
  run: Record<string, JsonValue>;
  profile: { id: string };
}

function show(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/**
 * The value a variable stands for in a scope (undefined when absent).
 *
 * @example
 * variableValue({ root: 'run', path: ['coupon'], source: 'run.coupon' }, scope); // 'WELCOME10'
 */
export function variableValue(v: TemplateVariable, scope: TemplateScope): unknown {
  const root = (scope as unknown as Record<string, unknown>)[v.root];
  return valueAt(root, v.path);
}

/**
 * A template rendered in a scope: each variable's value as text (a string as is, a number or
 * boolean as JSON, an object or list as JSON), its default when absent or null, else nothing.
 * Returns also the variables that had no value, for the journal.
 *
 * @example
 * renderTemplate('Hi {{ traits.first_name | default: "there" }}', { traits: {}, run: {}, profile: { id: 'p' } });
 * // { text: 'Hi there', missing: [] }
 */
export function renderTemplate(text: string, scope: TemplateScope): { text: string; missing: string[] } {
  const { parts } = parseTemplate(text);
  const missing: string[] = [];
  let out = '';
  for (const part of parts) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    const value = show(variableValue(part, scope));
    if (value === undefined && part.fallback === undefined) missing.push(`${part.root}.${part.path.join('.')}`);
    out += value ?? part.fallback ?? '';
  }
  return { text: out, missing };
}

/** The fields of `{{ employee.<field> }}`: the employee a `notify_employees` message is addressed to. */
export const EMPLOYEE_TEMPLATE_FIELDS = ['id', 'name', 'email', 'chatHandle'] as const;

/** The employee a notice is addressed to, as its template reads them (`employee.name`). */
export interface TemplateEmployee {
  id: string;
  name: string;
  email?: string;
  chatHandle?: string;
}

/** A template rendered but for some roots' variables, kept to be rendered later ({@link finishTemplate}). */
export type TemplatePart = string | TemplateVariable;

/**
 * A template rendered in a scope except the variables of the `later` roots, which stay as variables:
 * a notice is rendered with the person's values in the step, then once per employee it reaches. The
 * person's values are text parts, never parsed again (a trait holding `{{ employee.email }}` is text).
 *
 * @example
 * renderTemplateParts('Hi {{ employee.name }}, {{ traits.first_name }} signed up', scope, ['employee']);
 * // { parts: ['Hi ', { root: 'employee', path: ['name'], ... }, ', Ann signed up'], missing: [] }
 */
export function renderTemplateParts(
  text: string,
  scope: TemplateScope,
  later: readonly string[],
): { parts: TemplatePart[]; missing: string[] } {
  const parts: TemplatePart[] = [];
  const missing: string[] = [];
  for (const part of parseTemplate(text).parts) {
    if (typeof part !== 'string' && later.includes(part.root)) {
      parts.push(part);
      continue;
    }
    let t: string;
    if (typeof part === 'string') t = part;
    else {
      const value = show(variableValue(part, scope));
      if (value === undefined && part.fallback === undefined) missing.push(`${part.root}.${part.path.join('.')}`);
      t = value ?? part.fallback ?? '';
    }
    if (typeof parts.at(-1) === 'string') parts[parts.length - 1] += t;
    else parts.push(t);
  }
  return { parts, missing };
}

/**
 * The text of {@link renderTemplateParts}' parts with the remaining variables read from `scope` (absent:
 * their default, else nothing).
 *
 * @example
 * finishTemplate(parts, { employee: { id: 'emp_ann', name: 'Ann' } }); // 'Hi Ann, Bea signed up'
 */
export function finishTemplate(parts: readonly TemplatePart[], scope: Readonly<Record<string, unknown>>): string {
  let out = '';
  for (const part of parts) {
    if (typeof part === 'string') out += part;
    else out += show(valueAt(scope[part.root], part.path)) ?? part.fallback ?? '';
  }
  return out;
}

/**
 * Whether a template reads a root (`{{ employee.name }}` reads `employee`).
 *
 * @example
 * readsRoot('Hi {{ employee.name }}', 'employee'); // true
 */
export function readsRoot(text: string, root: string): boolean {
  return parseTemplate(text).variables.some((v) => v.root === root);
}

/**
 * A JSON value whose strings are templates, rendered (an `update_profile` value, an action's input).
 * A string that is exactly one variable keeps the variable's JSON type (`"{{ run.total }}"` stays 42).
 *
 * @example
 * renderJson({ code: '{{ run.coupon }}', n: 1 }, scope); // { code: 'WELCOME10', n: 1 }
 */
export function renderJson(value: JsonValue, scope: TemplateScope, missing: string[] = []): JsonValue {
  if (typeof value === 'string') {
    const { parts } = parseTemplate(value);
    if (parts.length === 1 && typeof parts[0] !== 'string') {
      const v = variableValue(parts[0]!, scope);
      if (v !== undefined && v !== null) return v as JsonValue;
    }
    const r = renderTemplate(value, scope);
    missing.push(...r.missing);
    return r.text;
  }
  if (Array.isArray(value)) return value.map((v) => renderJson(v, scope, missing));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderJson(v, scope, missing)]));
  return value;
}

/**
 * Every template string inside a JSON value (for validation).
 *
 * @example
 * templateStrings({ a: 'x {{ run.y }}', b: [1, 'z'] }); // ['x {{ run.y }}', 'z']
 */
export function templateStrings(value: JsonValue | undefined): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(templateStrings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(templateStrings);
  return [];
}

/**
 * What templates read in a step.
 *
 * @example
 * renderTemplate('Hi {{ traits.first_name }}', scopeOf(step));
 */
export function scopeOf(step: Step): TemplateScope {
  const scope: TemplateScope = { traits: step.facts.traits, run: step.state.data, profile: { id: step.facts.id } };
  if (step.facts.computed) scope.computed = step.facts.computed;
  if (step.state.event) scope.event = step.state.event;
  return scope;
}
