// Stage 5's shared types: a leaf module (types only), so its files import them without a cycle.
import type { PluginDefinition } from '@cairn/plugin-api';
import type { Destination } from './queries/destinations.ts';

/** A destination ready to receive: its row, its plugin and its parsed settings. */
export interface ActiveDestination {
  destination: Destination;
  plugin: Readonly<PluginDefinition>;
  settings: unknown;
}
