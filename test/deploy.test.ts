// docs/deploy.md, run as written: its scripts (docs/deploy/*.sh), its systemd units (their ExecStart, working
// directory and environment, with /opt/cairn standing for this checkout), its Postgres settings and its alert
// rules. One install on a fresh database (make-env.sh, `cairn migrate`, postgres.sql, `cairn admin-key rotate`,
// cairn.service), events from 30 people, a backup while it serves and takes writes (cairn-backup.service), a
// restore into a new database (restore.sh), secrets and the admin key rotated, the split layout
// (cairn-ingest@ + cairn-worker@) started on the restored database: it serves the same profiles and events,
// opens the PII sealed before the rotation, and keeps taking events. The doc's other claims are checked
// against the files they name (units, env file, alert rules, benchmark rows).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, loadConfig } from '@cairn/server';
import {
  adminApi,
  createTestDatabase,
  freePort,
  POSTGRES_SKIP_REASON,
  postTracking,
  settle,
  type TestDatabase,
  until,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ensureServerBuilt } from './support/cairn-bin.ts';
import {
  alertsUnreadable,
  CAIRN_BIN,
  DEPLOY,
  httpGet,
  one,
  PUBLIC_NAME,
  parseEnvFile,
  parseUnit,
  REPO,
  type Running,
  read,
  run,
  runOk,
  scrape,
  startNginx,
  startUnit,
  unitCommand,
  withEnv,
} from './support/deploy.ts';

describe('docs/deploy: the files the guide names', () => {
  // The units run the compiled `cairn` bin, which `npm run build` makes (CI has built it already).
  beforeAll(ensureServerBuilt, 300_000);
  const units = ['cairn.service', 'cairn-ingest@.service', 'cairn-worker@.service'];
  const paths: Record<string, string> = { '/opt/cairn': REPO };
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-units-'));
    paths['/etc/cairn/cairn.env'] = join(dir, 'cairn.env');
    await writeFile(
      paths['/etc/cairn/cairn.env'],
      await runOk(join(DEPLOY, 'make-env.sh'), ['postgres://c@db/c', 'https://c.example']),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each(units)(
    '%s: restarts, stops by SIGTERM within its timeout, is hardened, and runs the cairn bin with its role',
    (file) => {
      const unit = parseUnit(readFileSync(join(DEPLOY, file), 'utf8'));
      expect(one(unit, 'Service', 'Restart')).toBe('always');
      expect(one(unit, 'Service', 'KillSignal')).toBe('SIGTERM');
      expect(one(unit, 'Service', 'EnvironmentFile')).toBe('/etc/cairn/cairn.env');
      expect(Number(one(unit, 'Service', 'LimitNOFILE'))).toBeGreaterThanOrEqual(65_536);
      expect(one(unit, 'Service', 'NoNewPrivileges')).toBe('yes');
      expect(one(unit, 'Service', 'ProtectSystem')).toBe('strict');
      // The server bounds its own stop: in-flight requests (shutdownTimeoutMs), then the queues (10 s) and the
      // pool (5 s), server.ts. systemd must not SIGKILL it before that.
      const stopSeconds = Number(one(unit, 'Service', 'TimeoutStopSec'));
      expect(stopSeconds * 1000).toBeGreaterThan(DEFAULTS.shutdownTimeoutMs + 10_000 + 5_000);
      const { command, args, cwd } = unitCommand(file, paths, '8787');
      expect(command).toBe(CAIRN_BIN);
      expect(existsSync(command), `${command} (npm ci && npm run build make it)`).toBe(true);
      expect(statSync(command).mode & 0o111).not.toBe(0);
      expect(cwd).toBe(REPO);
      const role = file === 'cairn.service' ? 'all' : file.replace(/^cairn-(\w+)@\.service$/, '$1');
      expect(args).toEqual(['start', `--role=${role}`]);
      // The port: fixed for the all-in-one, the instance name for the templates.
      expect(unit.get('Service')?.get('Environment')).toEqual([file === 'cairn.service' ? 'PORT=8787' : 'PORT=%i']);
    },
  );

  it('cairn-backup.service runs backup.sh into the directory the doc names, on a timer', () => {
    const { command, args, env } = unitCommand('cairn-backup.service', paths);
    expect(command).toBe(join(DEPLOY, 'backup.sh'));
    expect(statSync(command).mode & 0o111).not.toBe(0);
    expect(args).toEqual(['/var/backups/cairn']);
    expect(env.BACKUP_KEEP).toBe('14');
    const timer = parseUnit(read('docs/deploy/cairn-backup.timer'));
    expect(one(timer, 'Timer', 'Persistent')).toBe('true');
  });

  it('make-env.sh writes a valid configuration with fresh secrets and leaves PORT and CAIRN_ROLE to the units', async () => {
    const a = parseEnvFile(
      await runOk(join(DEPLOY, 'make-env.sh'), ['postgres://cairn@db.internal/cairn', 'https://cairn.example.com/']),
    );
    const b = parseEnvFile(
      await runOk(join(DEPLOY, 'make-env.sh'), ['postgres://cairn@db.internal/cairn', 'https://cairn.example.com']),
    );
    expect(a.PORT).toBeUndefined();
    expect(a.CAIRN_ROLE).toBeUndefined();
    expect(a.CAIRN_ADMIN_API_KEY, 'the admin key comes from `cairn admin-key rotate`, not the file').toBeUndefined();
    expect(a.CAIRN_SECRET).not.toBe(b.CAIRN_SECRET);
    const config = loadConfig(a);
    expect(config.publicUrl).toBe('https://cairn.example.com');
    expect(config.trustProxy).toBe(true);
    expect(config.openFirstSignUp).toBe(false);
    expect(config.host).toBe('127.0.0.1');
    expect(config.metricsToken).toMatch(/^[0-9a-f]{64}$/);
    expect((await run(join(DEPLOY, 'make-env.sh'), ['cairn', 'https://x'])).code).toBe(2);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze') && !existsSync('/bin/systemd-analyze'))(
    'systemd-analyze verify accepts every unit (skipped where systemd-analyze is not installed)',
    async () => {
      const unitsDir = await mkdtemp(join(tmpdir(), 'cairn-units-'));
      try {
        for (const f of [...units, 'cairn-backup.service', 'cairn-backup.timer']) {
          await writeFile(join(unitsDir, f), read(`docs/deploy/${f}`).replaceAll('/opt/cairn', REPO));
        }
        const names = [
          'cairn.service',
          'cairn-ingest@8787.service',
          'cairn-worker@9101.service',
          'cairn-backup.service',
          'cairn-backup.timer',
        ];
        const r = await run('systemd-analyze', ['verify', ...names.map((n) => join(unitsDir, n))]);
        expect(`${r.stdout}${r.stderr}`.trim(), 'systemd-analyze verify says nothing about a good unit').toBe('');
        expect(r.code).toBe(0);
      } finally {
        await rm(unitsDir, { recursive: true, force: true });
      }
    },
  );

  it('alerts.yml is a Prometheus rule file whose rules all have a threshold, a duration and a severity', () => {
    const rules = parseYaml(read('docs/deploy/alerts.yml')).groups.flatMap((g: { rules: unknown[] }) => g.rules);
    expect(rules.length).toBeGreaterThan(5);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Cairn[A-Za-z]+$/);
      expect(r.expr).toMatch(/[<>]=?\s*[\d.e]+\s*$|==\s*0\s*$/);
      expect(r.for).toMatch(/^\d+[smh]$/);
      expect(['page', 'ticket']).toContain(r.labels?.severity);
      expect(r.annotations?.summary).toBeTruthy();
    }
  });

  it('deploy.md: its files exist, its variables are configuration, its benchmark figures are the recorded ones', () => {
    const doc = read('docs/deploy.md');
    for (const [, path] of doc.matchAll(/\]\((deploy\/[\w@.-]+)\)/g))
      expect(existsSync(join(REPO, 'docs', path!)), path).toBe(true);
    const config = read('server/src/config.ts');
    for (const [name] of doc.matchAll(/\bCAIRN_[A-Z0-9_]+/g))
      expect(config, `${name} is read by config.ts`).toContain(`${name}:`);
    // The table "Where the figures come from": | figure | the row's first cells, separated by "; " | value |.
    const bench = read('docs/benchmarks.md').replaceAll('*', '').split('\n');
    const table = doc.slice(doc.indexOf('| Figure | benchmarks.md row'));
    const cited = table
      .split('\n')
      .slice(2)
      .filter((l, i, all) => l.startsWith('|') && all.slice(0, i).every((x) => x.startsWith('|')))
      .map((l) =>
        l
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim()),
      );
    expect(cited.length).toBeGreaterThan(3);
    for (const [what, row, value] of cited) {
      const prefix = `| ${row!.split('; ').join(' | ')} |`;
      const lines = bench.filter((l) => l.startsWith(prefix));
      expect(lines, `${what}: one row of docs/benchmarks.md starts with ${prefix}`).toHaveLength(1);
      const cells = lines[0]!.split('|').map((c) => c.trim());
      // A cell is the value, or starts with it ("922 (665–1320)": a median and its range).
      expect(
        cells.some((c) => c === value || c.startsWith(`${value} `)),
        `${what}: ${value} in ${prefix}`,
      ).toBe(true);
    }
  });
});

// ---- the whole guide on a real Postgres ----

const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

describe('docs/deploy.md on a real Postgres: install, back up, restore, rotate, split, proxy', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }
  let db: TestDatabase | undefined;
  let restoredUrl: string | undefined;
  let work = '';
  const running: Running[] = [];
  const base = postgres(process.env.DATABASE_URL!, { max: 2, onnotice: () => {} });
  // What the second test takes over from the first: the restored database's split layout.
  let split: { paths: Record<string, string>; ingest: Running; ingestPort: string; writeKey: string } | undefined;

  beforeAll(ensureServerBuilt, 300_000);
  afterAll(async () => {
    await Promise.all(running.map((r) => r.stop()));
    if (restoredUrl)
      await base.unsafe(`DROP DATABASE IF EXISTS ${new URL(restoredUrl).pathname.slice(1)} WITH (FORCE)`);
    await base.end();
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('serves the same profiles after pg_dump → restore into a new database, and keeps taking events', async () => {
    db = await createTestDatabase('test/deploy.test.ts', 'postgres');
    const liveUrl = db.url!;
    const restored = new URL(liveUrl);
    restored.pathname = `${restored.pathname}_restored`;
    restoredUrl = restored.toString();
    // Database names are the test kit's hex hashes plus a suffix: DDL cannot take parameters.
    await base.unsafe(`DROP DATABASE IF EXISTS ${restored.pathname.slice(1)} WITH (FORCE)`);
    work = await mkdtemp(join(tmpdir(), 'cairn-deploy-'));
    const envFile = join(work, 'cairn.env');
    const backups = join(work, 'backups');
    const paths = { '/opt/cairn': REPO, '/etc/cairn/cairn.env': envFile, '/var/backups/cairn': backups };

    // Install (deploy.md, "Install"): the env file, the schema, the database settings, the admin key, the unit.
    const made = await runOk(join(DEPLOY, 'make-env.sh'), [liveUrl, `https://${PUBLIC_NAME}`]);
    await writeFile(envFile, made, { mode: 0o600 });
    const env = parseEnvFile(made);
    expect(await withEnv(envFile, CAIRN_BIN, 'migrate')).toMatch(/applied migration 0001/);
    await withEnv(envFile, 'sh', '-c', 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/deploy/postgres.sql');
    const firstKey = (await withEnv(envFile, CAIRN_BIN, 'admin-key', 'rotate')).trim();
    const live = await startUnit('cairn.service', paths, { env: { PORT: String(await freePort()) } });
    running.push(live);
    const api = adminApi(live.url, firstKey);
    const source = await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'deploy' }) });
    expect(source.status, source.text).toBe(201);
    const writeKey: string = source.body.writeKey;

    // Sign-up is closed (CAIRN_OPEN_FIRST_SIGNUP=0): the admin key invites the first person.
    const signUp = await fetch(`${live.url}/api/auth/sign-up/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: `https://${PUBLIC_NAME}` },
      body: JSON.stringify({ email: 'mallory@example.com', password: 'correct horse battery', name: 'M' }),
    });
    expect(signUp.status).toBe(403);
    const invited = await api('/users', {
      method: 'POST',
      body: JSON.stringify({ email: 'ops@example.com', role: 'admin' }),
    });
    expect(invited.status, invited.text).toBe(201);

    // Connections: at most CAIRN_DB_POOL_MAX + 1 (LISTEN) per process; the all-in-one is two processes.
    const liveName = new URL(liveUrl).pathname.slice(1);
    let maxConnections = 0;
    const sampler = setInterval(async () => {
      const [row] = await base<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${liveName}`;
      maxConnections = Math.max(maxConnections, row!.n);
    }, 100);

    // 30 people: a visit before they sign up (merged at identify), their email (PII, sealed at rest), an order.
    const people = Array.from({ length: 30 }, (_, i) => i);
    const eventsOf = (i: number) => [
      { messageId: `m-${i}-0`, type: 'page', anonymousId: `anon-${i}`, name: 'Home' },
      {
        messageId: `m-${i}-1`,
        type: 'identify',
        anonymousId: `anon-${i}`,
        userId: `person-${i}`,
        traits: { email: `Person${i}@Example.com`, plan: i % 3 ? 'pro' : 'free' },
      },
      {
        messageId: `m-${i}-2`,
        type: 'track',
        userId: `person-${i}`,
        event: 'Order Completed',
        properties: { total: i },
      },
    ];
    for (const i of people) {
      // What the reverse proxy sends: X-Forwarded-For overwritten with the client's address.
      const headers = { 'x-forwarded-for': `203.0.113.${i + 1}` };
      expect((await postTracking(live, writeKey, '/batch', { batch: eventsOf(i) }, { headers })).status).toBe(200);
    }
    const liveSql = postgres(liveUrl, { max: 2, onnotice: () => {} });
    try {
      await settle(liveSql, { queues: ['identify', 'fanout', 'compute'], timeoutMs: 60_000 });
    } finally {
      await liveSql.end();
    }
    const snapshot = async (call: ReturnType<typeof adminApi>) =>
      Promise.all(
        people.map(async (i) => {
          const profile = (await call(`/profiles?userId=person-${i}`)).body.data[0];
          return { profile, events: (await call(`/profiles/${profile.id}/events?limit=500`)).body.data };
        }),
      );
    const before = await snapshot(api);
    expect(before[0]!.profile.traits.email.value).toBe('person0@example.com');
    expect(JSON.stringify(before[5]!.events)).toContain('"ip":"203.0.113.6"');
    const users = (await api('/users')).body.data;

    // Backup while the server serves and takes writes (deploy.md, "Backups"): cairn-backup.service as written.
    let loading = true;
    let loadSent = 0;
    const load = (async () => {
      for (let n = 0; loading; n++) {
        const batch = Array.from({ length: 20 }, (_, k) => ({
          type: 'track',
          userId: `load-${(n + k) % 50}`,
          event: 'Load',
        }));
        expect((await postTracking(live, writeKey, '/batch', { batch })).status).toBe(200);
        loadSent += batch.length;
      }
    })();
    const backup = unitCommand('cairn-backup.service', paths);
    const dumpPath = (await runOk(backup.command, backup.args, backup.env)).trim();
    loading = false;
    await load;
    clearInterval(sampler);
    expect(dumpPath).toMatch(/\/cairn-\d{8}T\d{6}Z\.dump$/);
    expect(statSync(dumpPath).mode & 0o777, 'dumps are readable by their owner only').toBe(0o600);
    const perProcess = Number(env.CAIRN_DB_POOL_MAX) + 1;
    console.log(
      `deploy: ${loadSent} events sent during the dump; at most ${maxConnections} connections to the live database ` +
        `(bound: 2 processes × ${perProcess} + pg_dump's 1)`,
    );
    expect(maxConnections).toBeLessThanOrEqual(2 * perProcess + 1);
    expect(alertsUnreadable(await scrape(live.url, env.CAIRN_METRICS_TOKEN!)), 'the all-in-one').toEqual([]);
    const stopped = await live.stop();
    console.log(`deploy: cairn.service stopped on SIGTERM in ${stopped.ms} ms (TimeoutStopSec=45)`);
    expect(stopped.code).toBe(0);

    // Restore into a new database (deploy.md, "Restore"), never over one with data.
    await runOk(join(DEPLOY, 'restore.sh'), [dumpPath, restoredUrl]);
    const again = await run(join(DEPLOY, 'restore.sh'), [dumpPath, restoredUrl]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already has \d+ tables/);
    const [settings] = await base<{ setconfig: string[] }[]>`
      SELECT s.setconfig
      FROM pg_db_role_setting s
      JOIN pg_database d ON d.oid = s.setdatabase
      WHERE d.datname = ${restored.pathname.slice(1)}`;
    expect(settings?.setconfig).toContain('idle_in_transaction_session_timeout=1min');

    // Rotation (deploy.md, "Secrets"): a new CAIRN_SECRET with the old one kept for the PII sealed under it, a
    // new metrics token, a new admin key. The restored servers start with them.
    const rotatedFile = join(work, 'cairn-restored.env');
    const rotated = {
      DATABASE_URL: restoredUrl,
      CAIRN_SECRET: randomBytes(32).toString('hex'),
      CAIRN_PII_OLD_SECRETS: env.CAIRN_SECRET!,
      CAIRN_METRICS_TOKEN: randomBytes(32).toString('hex'),
    };
    const rotatedEnv = Object.entries({ ...env, ...rotated }).map(([k, v]) => `${k}=${v}\n`);
    await writeFile(rotatedFile, rotatedEnv.join(''), { mode: 0o600 });
    const secondKey = (await withEnv(rotatedFile, CAIRN_BIN, 'admin-key', 'rotate')).trim();
    expect(secondKey).not.toBe(firstKey);

    // The split layout on the restored database: an ingest node and a worker.
    const splitPaths = { ...paths, '/etc/cairn/cairn.env': rotatedFile };
    const ingestPort = String(await freePort());
    const ingest = await startUnit('cairn-ingest@.service', splitPaths, { instance: ingestPort });
    running.push(ingest);
    const worker = await startUnit('cairn-worker@.service', splitPaths, { instance: String(await freePort()) });
    running.push(worker);
    const restoredApi = adminApi(ingest.url, secondKey);
    expect((await adminApi(ingest.url, firstKey)('/sources')).status, 'the rotated-out admin key').toBe(401);
    expect(await snapshot(restoredApi)).toEqual(before);
    expect((await restoredApi('/users')).body.data).toEqual(users);
    // Email lookups go through the blind index, keyed by the oldest secret: they survive the rotation.
    expect((await restoredApi('/profiles?email=person7@example.com')).body.data[0]?.id).toBe(before[7]!.profile.id);

    // Still taking events: a new person, and an event stored before the dump sent again (deduplicated).
    const more = [
      eventsOf(3)[2],
      { messageId: 'after-1', type: 'identify', userId: 'after-restore', traits: { plan: 'pro' } },
    ];
    expect((await postTracking(ingest, writeKey, '/batch', { batch: more })).status).toBe(200);
    await until('the new person', async () => (await restoredApi('/profiles?userId=after-restore')).body.data[0], {
      tries: 600,
      intervalMs: 100,
    });
    const restoredSql = postgres(restoredUrl, { max: 2, onnotice: () => {} });
    try {
      // The load's events stored but not yet processed at the dump have their jobs in the dump too.
      await settle(restoredSql, { timeoutMs: 60_000 });
    } finally {
      await restoredSql.end();
    }
    const events3 = await restoredApi(`/profiles/${before[3]!.profile.id}/events?limit=500`);
    expect(events3.body.data).toEqual(before[3]!.events);

    // Monitoring (deploy.md, "Monitoring"): /metrics needs the token; what the alerts read is there.
    expect((await fetch(`${ingest.url}/metrics`)).status).toBe(401);
    const token = rotated.CAIRN_METRICS_TOKEN;
    const both = `${await scrape(ingest.url, token)}\n${await scrape(worker.url, token)}`;
    expect(alertsUnreadable(both), 'the split layout').toEqual([]);
    split = { paths: splitPaths, ingest, ingestPort, writeKey };
  }, 300_000);

  it.skipIf(!nginx)(
    'behind nginx.conf (TLS): forged client addresses are overwritten; ingest nodes restart one at a time under load with every request answered 200 (skipped where nginx is not installed)',
    async () => {
      if (!split) throw new Error('needs the split layout of the test before');
      const { paths, writeKey } = split;
      const second = String(await freePort());
      let ingests: Record<string, Running> = { [split.ingestPort]: split.ingest };
      ingests[second] = await startUnit('cairn-ingest@.service', paths, { instance: second });
      running.push(ingests[second]!);
      const proxy = await startNginx(nginx!, work, Object.keys(ingests));
      try {
        // HTTP is redirected to HTTPS on the public name.
        const plain = await httpGet(proxy.httpPort, '/v1/batch');
        expect(plain.status).toBe(301);
        expect(plain.location).toBe(`https://${PUBLIC_NAME}/v1/batch`);
        expect((await proxy.request('GET', '/metrics')).status, '/metrics is not served through the proxy').toBe(404);

        // A client claiming another address: nginx overwrites X-Forwarded-For, Cairn stores what nginx saw.
        const forged = { messageId: 'via-proxy', type: 'identify', userId: 'via-proxy', traits: { plan: 'free' } };
        const sent = await proxy.request(
          'POST',
          '/v1/batch',
          { batch: [forged] },
          {
            authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`,
            'x-forwarded-for': '198.51.100.66',
          },
        );
        expect(sent.status, sent.body).toBe(200);
        const restoredSql = postgres(restoredUrl!, { max: 1, onnotice: () => {} });
        try {
          const [row] = await restoredSql<{ ip: string }[]>`
            SELECT payload->'context'->>'ip' AS ip FROM events WHERE message_id = 'via-proxy'`;
          expect(row?.ip).toBe('127.0.0.1');

          // Rolling restart (deploy.md, "Upgrades"): each ingest node in turn, SIGTERM, start, wait for /readyz,
          // while a client sends batches through nginx.
          let sending = true;
          const statuses: number[] = [];
          const ids: string[] = [];
          const client = (async () => {
            for (let n = 0; sending; n++) {
              const batch = Array.from({ length: 10 }, (_, k) => ({
                messageId: `roll-${n}-${k}`,
                type: 'track',
                userId: `roll-${k}`,
                event: 'Roll',
              }));
              const r = await proxy.request(
                'POST',
                '/v1/batch',
                { batch },
                { authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` },
              );
              statuses.push(r.status);
              if (r.status === 200) ids.push(...batch.map((e) => e.messageId));
            }
          })();
          for (const port of Object.keys(ingests)) {
            const stop = await ingests[port]!.stop();
            expect(stop.code).toBe(0);
            ingests = { ...ingests, [port]: await startUnit('cairn-ingest@.service', paths, { instance: port }) };
            running.push(ingests[port]!);
          }
          sending = false;
          await client;
          const failed = statuses.filter((s) => s !== 200);
          console.log(
            `deploy: rolling restart of 2 ingest nodes behind nginx: ${statuses.length} requests, ${failed.length} not 200`,
          );
          expect(failed).toEqual([]);
          const [stored] = await restoredSql<{ n: number }[]>`
            SELECT count(*)::int AS n FROM events WHERE message_id = ANY(${ids}::text[])`;
          expect(stored!.n).toBe(ids.length);
        } finally {
          await restoredSql.end();
        }
      } finally {
        await proxy.stop();
      }
    },
    180_000,
  );
});
