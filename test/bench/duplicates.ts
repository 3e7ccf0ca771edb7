// Duplicate detection at scale: N profiles (BENCH_PROFILES, default 200,000) each with a sealed email
// identity, a name and a sealed phone trait, 1% of them given a twin by an email variant and 1% by the
// same name and phone typed differently; then a scan through the API (POST /api/duplicates/scan), and a
// second one with nothing changed (incremental: no profile opened again).
// The reference, in the same run: the multi-row INSERT of the same identity and trait rows, and a
// `SELECT count(*)` over them.
//   npm run bench:duplicates                 (Postgres at DATABASE_URL; BENCH_PROFILES=1000000 for the 1M figure)
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { createTestDatabase, startTestCairn, TEST_ADMIN_KEY } from '@cairn/server/testing';

const N = Number(process.env.BENCH_PROFILES ?? 200_000);
const CHUNK = 10_000;
const TWINS = Math.floor(N / 100);

const seconds = (t0: number) => (performance.now() - t0) / 1000;

const db = await createTestDatabase(`bench-duplicates-${process.pid}-${Date.now()}`, 'postgres');
const cairn = await startTestCairn({ ...db.env, CAIRN_DEMO: '', CAIRN_REQUEST_TIMEOUT_MS: '1800000' });
const { sql, pii } = cairn;
try {
  console.log(
    `duplicates bench: ${N.toLocaleString()} profiles, ${TWINS} email-variant twins, ${TWINS} name+phone twins`,
  );
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}`);

  // Person i: mail i, name i, phone i. Twins (the last 2% of rows) repeat an earlier person's.
  const person = (i: number) => {
    if (i >= N - TWINS) {
      const j = i - (N - TWINS);
      return { email: `First.Last${j}+crm@googlemail.com`, name: `person ${j + 1}x`, phone: `+1 555 ${i}` };
    }
    if (i >= N - 2 * TWINS) {
      const j = i - (N - 2 * TWINS) + TWINS;
      return { email: `other${i}@example.org`, name: `Last${j}, First`, phone: `0${String(5_550_000_000 + j)}` };
    }
    return { email: `first.last${i}@gmail.com`, name: `First Last${i}`, phone: `+1 ${5_550_000_000 + i}` };
  };

  let insertS = 0;
  const tGen = performance.now();
  for (let from = 0; from < N; from += CHUNK) {
    const ids: string[] = [];
    const idKeys: string[] = [];
    const idValues: string[] = [];
    const tProfiles: string[] = [];
    const tKeys: string[] = [];
    const tValues: string[] = [];
    const tBlinds: (string | null)[] = [];
    for (let i = from; i < Math.min(N, from + CHUNK); i++) {
      const p = person(i);
      const id = randomUUID();
      const email = { type: 'email' as const, value: p.email.trim().toLowerCase() };
      ids.push(id);
      idKeys.push(pii.identityKey(email));
      idValues.push(pii.identityValue(email));
      tProfiles.push(id, id);
      tKeys.push('name', 'phone');
      tValues.push(JSON.stringify(p.name), JSON.stringify(pii.sealValue('phone', p.phone)));
      tBlinds.push(null, pii.traitIndex('phone', p.phone));
    }
    const t0 = performance.now();
    await sql`INSERT INTO profiles (id) SELECT * FROM unnest(${ids}::uuid[])`;
    await sql`
      INSERT INTO identities (key, type, value, profile_id)
      SELECT k, 'email', v, p FROM unnest(${idKeys}::text[], ${idValues}::text[], ${ids}::uuid[]) AS x (k, v, p)`;
    await sql`
      INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source, blind)
      SELECT p, k, v::jsonb, now(), 0, 'identify', b
      FROM unnest(${tProfiles}::uuid[], ${tKeys}::text[], ${tValues}::text[], ${tBlinds}::text[]) AS x (p, k, v, b)`;
    insertS += seconds(t0);
  }
  console.log(`generated and sealed in ${seconds(tGen).toFixed(1)} s`);
  const tCount = performance.now();
  await sql`SELECT (SELECT count(*) FROM identities) + (SELECT count(*) FROM profile_traits) AS n`;
  const countS = seconds(tCount);
  await sql`VACUUM ANALYZE profiles, identities, profile_traits`;

  const tScan = performance.now();
  const cpu0 = process.cpuUsage();
  const res = await fetch(`${cairn.url}/api/duplicates/scan`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
  });
  const scan = (await res.json()) as { profiles: number; keys: number; candidates: number };
  const scanS = seconds(tScan);
  const cpu = process.cpuUsage(cpu0);
  if (res.status !== 200) throw new Error(`scan: HTTP ${res.status} ${JSON.stringify(scan)}`);
  const [found] = await sql<{ email: number; name_phone: number }[]>`
    SELECT count(*) FILTER (WHERE reasons = '{email}')::int AS email,
      count(*) FILTER (WHERE reasons = '{name_phone}')::int AS name_phone
    FROM duplicate_candidates`;
  console.log(
    `scan (API):            ${scanS.toFixed(2)} s  ${Math.round(N / scanS).toLocaleString()} profiles/s  ` +
      `${scan.keys.toLocaleString()} keys, ${scan.candidates} candidates (email ${found!.email}/${TWINS}, name+phone ${found!.name_phone}/${TWINS})`,
  );
  // The server runs in this process: its CPU time is the scan's Node side (opening, normalising, hashing).
  console.log(
    `  of which Node CPU:   ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`,
  );
  console.log(
    `reference INSERT:      ${insertS.toFixed(2)} s  (the ${(3 * N).toLocaleString()} identity and trait rows, multi-row) → scan/INSERT ${(scanS / insertS).toFixed(2)}×`,
  );
  console.log(`reference count(*):    ${countS.toFixed(2)} s  (the same rows)`);

  // Again with nothing changed: every profile's fingerprint matches, nothing is opened or re-keyed.
  const tAgain = performance.now();
  const again = await fetch(`${cairn.url}/api/duplicates/scan`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
  });
  const rescan = (await again.json()) as { changed: number; candidates: number };
  console.log(
    `rescan, unchanged:     ${seconds(tAgain).toFixed(2)} s  (${rescan.changed} profiles re-keyed, ${rescan.candidates} candidates)`,
  );
} finally {
  await cairn.close();
  await db.drop();
}
