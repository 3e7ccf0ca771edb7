// Test support shared by the server's own tests and the end-to-end tests in test/.
export { createTestDatabase, type DbMode, POSTGRES_SKIP_REASON, type TestDatabase, testModes } from './db.ts';
export { type ApiAnswer, adminApi, basicAuth, until } from './http.ts';
export { type ServerProcess, spawnServer, startTestCairn, TEST_ADMIN_KEY } from './server.ts';
export { openUnsubscribeToken } from './unsubscribe.ts';
