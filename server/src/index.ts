export { type Config, ConfigError, DEFAULTS, loadConfig } from './config.ts';
export { createLogger, type Logger } from './log.ts';
export { type Cairn, startCairn } from './server.ts';
