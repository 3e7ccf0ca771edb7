export { definePlugin } from './define.ts';
export {
  checkResponse,
  errorOutcome,
  MAX_ERROR_LENGTH,
  PermanentError,
  parseRetryAfter,
  RetryableError,
} from './errors.ts';
export { PluginSettingsError, type RunOptions, type RunResult, runPlugin } from './harness.ts';
export { closePluginAgent, MAX_RESPONSE_BYTES } from './http.ts';
export { createPluginFetch, DEFAULT_FETCH_TIMEOUT_MS, sendBatch } from './run.ts';
export { type Escape, itemScope, lookup, render, type Scope } from './template.ts';
export type {
  AcceptedEvent,
  Channel,
  DeliveredEvent,
  DeliveryItem,
  DeliveryProfile,
  ForgetRequest,
  ItemOutcome,
  PluginContext,
  PluginDefinition,
  PluginFetch,
  PluginKv,
  PluginLog,
} from './types.ts';
