import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { generateAnalyticsEvents, sendGenerated } from './analytics-data.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { describeOnDatabases } from './flows.ts';
import { startTestCairn } from './server.ts';

// The oracle tests of stage 6 trust `person` as the truth of who is one person after merges: this holds
// the generator to what stage 2 makes of its events.
describeOnDatabases('generated analytics histories', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  const events = generateAnalyticsEvents({ seed: 11, people: 150, eventsPerPerson: 20 });
  beforeAll(async () => {
    db = await createTestDatabase(`analytics-data.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    await sendGenerated(cairn, events);
  }, 300_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('are stored whole, and each generated person is exactly one profile', async () => {
    const rows = await cairn.sql<{ message_id: string; profile_id: string | null }[]>`
      SELECT message_id, profile_id::text FROM events WHERE message_id LIKE 'gen-11-%'`;
    expect(rows).toHaveLength(events.length);
    const profileOf = new Map(rows.map((r) => [r.message_id, r.profile_id]));
    const profilesOfPerson = new Map<string, Set<string | null>>();
    const personsOfProfile = new Map<string | null, Set<string>>();
    for (const e of events) {
      const profile = profileOf.get(e.body.messageId)!;
      (profilesOfPerson.get(e.person) ?? profilesOfPerson.set(e.person, new Set()).get(e.person)!).add(profile);
      (personsOfProfile.get(profile) ?? personsOfProfile.set(profile, new Set()).get(profile)!).add(e.person);
    }
    expect([...profilesOfPerson.values()].filter((s) => s.size !== 1)).toEqual([]);
    expect([...personsOfProfile.values()].filter((s) => s.size !== 1)).toEqual([]);
    expect(personsOfProfile.has(null)).toBe(false);
    // Merges happened: some people span several devices.
    const devices = new Map<string, Set<string>>();
    for (const e of events)
      (devices.get(e.person) ?? devices.set(e.person, new Set()).get(e.person)!).add(e.body.anonymousId);
    expect([...devices.values()].filter((d) => d.size > 1).length).toBeGreaterThan(10);
  });
});
