// Test support shared by the server's own tests and the end-to-end tests in test/.
// The scripted HTTP receiver is the one plugin authors get from @cairn/plugin-api/testing.
export {
  type AnswerScript,
  type ReceivedRequest,
  type Receiver,
  type ReceiverOptions,
  type ScriptedAnswer,
  startReceiver,
  type WaitOptions,
} from '@cairn/plugin-api/testing';
export { createTestDatabase, type DbMode, POSTGRES_SKIP_REASON, type TestDatabase, testModes } from './db.ts';
export {
  type IdleOptions,
  pipelineIdle,
  postTracking,
  type SendOptions,
  sendEvents,
  settle,
  type Target,
} from './events.ts';
export { failNextHandOff } from './faults.ts';
export {
  describeOnDatabases,
  describeOnPostgres,
  type FlowHarness,
  type FlowHarnessOptions,
  flowHarness,
  type MovableClock,
  movableClock,
} from './flows.ts';
export { type ApiAnswer, adminApi, basicAuth, until } from './http.ts';
export { freePort } from './ports.ts';
export { approveAndPublish, reviewerApi } from './review.ts';
export { type ServerProcess, spawnServer, startTestCairn, TEST_ADMIN_KEY } from './server.ts';
export { openUnsubscribeToken } from './unsubscribe.ts';
