// Stage 1's public surface: what the server, the admin API and the audit log may use. Everything else in this
// folder is the stage's own (biome's noRestrictedImports keeps api/ and audit/ to this file).

export { EVENT_IMPORT_CHUNK, ImportRefused, runEventImport } from './import-events.ts';
export { type ImportKind, importKindOf, insertEventImport } from './import-events-queries.ts';
export { type EventMapping, parseEventMapping } from './import-events-rows.ts';
export {
  getEvent,
  type LiveEvent,
  type LiveFilter,
  type LiveRefusal,
  liveEvents,
  liveHeads,
  liveRefusals,
} from './live.ts';
export { listEvents, listFailedEvents } from './queries.ts';
export { replayFailedEvent } from './replay.ts';
export { createIngestStage, type IngestStage } from './stage.ts';
export type { EventWriter } from './writer.ts';
