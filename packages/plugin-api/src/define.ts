import type { z } from 'zod';
import { ACCEPTED_EVENTS, PLUGIN_API_VERSION, type PluginDefinition, SUPPORTED_API_VERSIONS } from './types.ts';

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

const ACCEPTED = new Set<string>(ACCEPTED_EVENTS);

const CHANNELS = new Set(['email', 'sms', 'push', 'chat', 'webhook']);

/** Thrown by {@link definePlugin} and {@link validatePlugin}: every problem of a definition, in one message. */
export class PluginValidationError extends TypeError {
  readonly problems: readonly string[];
  constructor(name: string, problems: readonly string[]) {
    super(`plugin ${name || '(unnamed)'}: ${problems.join('; ')}`);
    this.name = 'PluginValidationError';
    this.problems = problems;
  }
}

// What is wrong with a definition, as short phrases naming the field ("send or sendOne must be a function").
function problemsOf(d: Partial<Record<keyof PluginDefinition, unknown>>): string[] {
  const problems: string[] = [];
  if (typeof d.name !== 'string' || !NAME.test(d.name))
    problems.push('name must be lower-case letters, digits and dashes');
  if (typeof d.version !== 'string' || !d.version) problems.push('version is required');
  const send = typeof d.send === 'function';
  const sendOne = typeof d.sendOne === 'function';
  if (!send && !sendOne) problems.push('send or sendOne must be a function');
  if (send && sendOne) problems.push('give send or sendOne, not both');
  if (d.send !== undefined && !send) problems.push('send must be a function');
  if (d.sendOne !== undefined && !sendOne) problems.push('sendOne must be a function');
  const settings = d.settings as { safeParse?: unknown } | undefined;
  if (!settings || typeof settings.safeParse !== 'function') problems.push('settings must be a zod schema');
  if (!Array.isArray(d.purposes)) problems.push('purposes must be an array (may be empty)');
  if (!Array.isArray(d.accepts) || d.accepts.length === 0) {
    problems.push('accepts must name at least one event type');
  } else {
    const unknown = d.accepts.filter((a) => !ACCEPTED.has(a as string));
    if (unknown.length)
      problems.push(`accepts: unknown event types ${unknown.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  if (d.channel !== undefined && !CHANNELS.has(d.channel as string)) {
    problems.push(`channel must be one of ${[...CHANNELS].join(', ')}`);
  }
  const size = d.batchSize ?? 1;
  if (!Number.isInteger(size) || (size as number) < 1 || (size as number) > 1000) {
    problems.push('batchSize must be an integer 1..1000');
  }
  if (d.ordering !== undefined && d.ordering !== 'profile' && d.ordering !== 'none') {
    problems.push('ordering must be "profile" or "none"');
  }
  const parallel = d.parallel;
  if (
    parallel !== undefined &&
    typeof parallel !== 'function' &&
    !(Number.isInteger(parallel) && (parallel as number) >= 1)
  ) {
    problems.push('parallel must be a positive integer or a function of the settings');
  }
  if (d.actions !== undefined) problems.push(...actionProblems(d.actions));
  if (d.apiVersion === undefined) problems.push('apiVersion is missing (define the plugin with definePlugin)');
  else if (!SUPPORTED_API_VERSIONS.includes(d.apiVersion as number)) {
    problems.push(
      `apiVersion ${String(d.apiVersion)} is not supported (supported: ${SUPPORTED_API_VERSIONS.join(', ')})`,
    );
  }
  return problems;
}

const ACTION_NAME = /^[a-z][a-z0-9_]{0,63}$/;

// `actions`: an object of named { input?: zod schema, run: function }.
function actionProblems(actions: unknown): string[] {
  if (typeof actions !== 'object' || actions === null || Array.isArray(actions))
    return ['actions must be an object of named actions'];
  const problems: string[] = [];
  for (const [name, a] of Object.entries(actions)) {
    if (!ACTION_NAME.test(name)) problems.push(`actions.${name}: names are lower-case letters, digits and _`);
    const action = a as { run?: unknown; input?: { safeParse?: unknown } } | null;
    if (typeof action?.run !== 'function') problems.push(`actions.${name}.run must be a function`);
    if (action?.input !== undefined && typeof action.input?.safeParse !== 'function')
      problems.push(`actions.${name}.input must be a zod schema`);
  }
  return problems;
}

/**
 * Declares a destination plugin. Checks the definition's shape at load time (so a broken plugin fails
 * when the server starts, not at the first delivery), stamps it with the contract's `apiVersion` and
 * returns it typed and frozen. Give `sendOne(item, ctx)` (the framework runs the per-item loop) or
 * `send(items, ctx)` (a batch in one request).
 *
 * @example
 * export default definePlugin({
 *   name: 'hello', version: '1.0.0', description: 'Posts events to a URL',
 *   settings: z.object({ url: z.string().url() }), purposes: ['analytics'], accepts: ['track'],
 *   async sendOne(item, ctx) {
 *     await checkResponse(await ctx.fetch(ctx.settings.url, { method: 'POST', body: JSON.stringify(item.event) }));
 *   },
 * });
 */
export function definePlugin<S extends z.ZodType>(definition: PluginDefinition<S>): Readonly<PluginDefinition<S>> {
  const stamped = { apiVersion: PLUGIN_API_VERSION, ...definition };
  const problems = problemsOf(stamped);
  if (problems.length) throw new PluginValidationError(String(definition.name ?? ''), problems);
  return Object.freeze({ ...stamped, batchSize: stamped.batchSize ?? 1, ordering: stamped.ordering ?? 'none' });
}

/**
 * Checks that a value loaded from somewhere (a package named in `CAIRN_PLUGINS`) is a plugin this
 * server can run: the shape {@link definePlugin} checks, and an `apiVersion` it supports. Returns it
 * frozen, with the defaults filled in; throws a {@link PluginValidationError} naming every problem.
 *
 * @example
 * const plugin = validatePlugin((await import('@acme/cairn-x')).default);
 */
export function validatePlugin(value: unknown): Readonly<PluginDefinition> {
  if (typeof value !== 'object' || value === null) {
    throw new PluginValidationError('', [
      `expected a plugin definition (an object), got ${value === null ? 'null' : typeof value}`,
    ]);
  }
  const d = value as PluginDefinition;
  const problems = problemsOf(d);
  if (problems.length) throw new PluginValidationError(typeof d.name === 'string' ? d.name : '', problems);
  return Object.isFrozen(d) && d.batchSize !== undefined && d.ordering !== undefined
    ? d
    : Object.freeze({ ...d, batchSize: d.batchSize ?? 1, ordering: d.ordering ?? 'none' });
}
