export { type Config, ConfigError, DEFAULTS, loadConfig } from './config.ts';
export { createLogger, type LogFormat, type Logger, type LogLevel, type StructuredLogger } from './log.ts';
export { createPii, DEFAULT_PII_TRAITS, type Pii } from './pii/index.ts';
export { type Cairn, startCairn } from './server.ts';
