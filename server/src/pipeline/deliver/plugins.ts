import type { PluginDefinition } from '@cairn/plugin-api';
import webhook from '@cairn/plugin-webhook';

/**
 * The plugins this server can deliver with, by name. A plugin is installed by adding its package
 * and one line here; its definition is checked by definePlugin when this module loads.
 */
export const PLUGINS: ReadonlyMap<string, Readonly<PluginDefinition>> = new Map(
  [webhook].map((p) => [p.name, p as unknown as Readonly<PluginDefinition>]),
);
