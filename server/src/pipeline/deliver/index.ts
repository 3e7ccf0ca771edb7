// Stage 5's public surface: what the server, the admin API and the audit log may use. Everything else in this
// folder is the stage's own (biome's noRestrictedImports keeps api/ and audit/ to this file).

export type { DeliverCommands } from './commands.ts';
export type { DestinationDirectory } from './directory.ts';
export { FilterSchema } from './filter.ts';
export { DELIVERY_STATUSES, deliveriesOfEvent, deliveryCounts, listDeliveries } from './ledger.ts';
export { BUILTIN_REGISTRY, loadPlugins, PluginLoadError, type PluginRegistry } from './plugins.ts';
export {
  type Destination,
  type DestinationInput,
  deleteDestination,
  getDestination,
  insertDestination,
  listDestinations,
  updateDestination,
} from './queries/destinations.ts';
export { deliveriesOfEvents, messagesOfProfiles, type PersonDelivery } from './queries/profile-deliveries.ts';
export { createDeliverStage, type DeliverStage } from './stage.ts';
export { setSubscription } from './unsubscribe.ts';
