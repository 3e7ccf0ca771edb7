import type { z } from 'zod';
import type { PluginDefinition } from './types.ts';

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/**
 * Declares a destination plugin. Checks the definition's shape at load time (so a broken plugin fails
 * when the server starts, not at the first delivery) and returns it typed and frozen.
 *
 * @example
 * export default definePlugin({
 *   name: 'hello', version: '1.0.0', description: 'Posts events to a URL',
 *   settings: z.object({ url: z.string().url() }), purposes: ['analytics'], accepts: ['track'],
 *   async send(items, ctx) {
 *     for (const item of items) await checkResponse(await ctx.fetch(ctx.settings.url, { method: 'POST', body: JSON.stringify(item.event) }));
 *     return undefined;
 *   },
 * });
 */
export function definePlugin<S extends z.ZodType>(definition: PluginDefinition<S>): Readonly<PluginDefinition<S>> {
  const problems: string[] = [];
  if (!NAME.test(definition.name)) problems.push('name must be lower-case letters, digits and dashes');
  if (!definition.version) problems.push('version is required');
  if (typeof definition.send !== 'function') problems.push('send must be a function');
  if (!definition.settings || typeof definition.settings.safeParse !== 'function') {
    problems.push('settings must be a zod schema');
  }
  if (!Array.isArray(definition.purposes)) problems.push('purposes must be an array (may be empty)');
  if (!Array.isArray(definition.accepts) || definition.accepts.length === 0) {
    problems.push('accepts must name at least one event type');
  }
  const size = definition.batchSize ?? 1;
  if (!Number.isInteger(size) || size < 1 || size > 1000) problems.push('batchSize must be an integer 1..1000');
  if (problems.length) throw new TypeError(`plugin ${definition.name || '(unnamed)'}: ${problems.join('; ')}`);
  return Object.freeze({ ...definition, batchSize: size, ordering: definition.ordering ?? 'none' });
}
