export { definePlugin, PluginValidationError, validatePlugin } from './define.ts';
export {
  checkResponse,
  errorOutcome,
  isSystemic,
  MAX_ERROR_LENGTH,
  PER_MESSAGE_STATUSES,
  PermanentError,
  type PluginErrorOptions,
  parseRetryAfter,
  RetryableError,
} from './errors.ts';
export { PluginSettingsError, type RunOptions, type RunResult, runPlugin, WAITING } from './harness.ts';
export { closePluginAgent, MAX_RESPONSE_BYTES } from './http.ts';
export {
  createPluginFetch,
  DEFAULT_FETCH_TIMEOUT_MS,
  HELD_BACK,
  type SendEachOptions,
  sendBatch,
  sendEach,
} from './run.ts';
export { type Escape, itemScope, lookup, render, type Scope } from './template.ts';
export type {
  AcceptedEvent,
  ActionContext,
  ActionOutput,
  Channel,
  DeliveredEvent,
  DeliveryItem,
  DeliveryMessage,
  DeliveryProfile,
  ForgetRequest,
  ItemOutcome,
  MessageAttachment,
  PluginAction,
  PluginContext,
  PluginDefinition,
  PluginFetch,
  PluginKv,
  PluginLog,
} from './types.ts';
export { ACCEPTED_EVENTS, PLUGIN_API_VERSION, SUPPORTED_API_VERSIONS } from './types.ts';
