// What test/deploy.test.ts needs to run docs/deploy as written: systemd units and environment files read the way
// systemd reads the subset the units use, the units' commands started as processes (this checkout standing for
// /opt/cairn), the scripts run, the alert rules checked against /metrics, and nginx.conf around an nginx of the
// test's own.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { get as httpGet_ } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@cairn/server/testing';
import { parse as parseYaml } from 'yaml';
import { waitFor } from './http.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const DEPLOY = join(REPO, 'docs', 'deploy');
export const read = (path: string) => readFileSync(join(REPO, path), 'utf8');

// ---- systemd units and environment files, read as systemd reads the subset the units use ----

export type Unit = Map<string, Map<string, string[]>>;

export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.endsWith('\\')) throw new Error(`line continuations are not used here: ${raw}`);
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 1) throw new Error(`not a unit line: ${raw}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

export function one(unit: Unit, section: string, key: string): string {
  const values = unit.get(section)?.get(key) ?? [];
  if (values.length !== 1) throw new Error(`[${section}] ${key}: expected one value, found ${values.length}`);
  return values[0]!;
}

/** KEY=VALUE lines and # comments, no quotes: the form on which systemd, with-env.sh and a shell agree. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || /["'\\]/.test(m[2]!)) throw new Error(`not a plain KEY=VALUE line: ${line}`);
    env[m[1]!] = m[2]!;
  }
  return env;
}

/** What systemd would run for a unit: argv, directory and environment, with the deploy paths mapped here. */
export function unitCommand(file: string, paths: Record<string, string>, instance?: string) {
  const unit = parseUnit(readFileSync(join(DEPLOY, file), 'utf8'));
  const place = (s: string) => {
    let out = instance === undefined ? s : s.replaceAll('%i', instance);
    if (/%./.test(out)) throw new Error(`${file}: a specifier this test does not expand: ${s}`);
    for (const [from, to] of Object.entries(paths)) out = out.replaceAll(from, to);
    return out;
  };
  const execStart = one(unit, 'Service', 'ExecStart');
  if (/["'\\$]/.test(execStart)) throw new Error(`${file}: ExecStart must be plain words: ${execStart}`);
  const [command, ...args] = place(execStart).split(/\s+/);
  // systemd starts a service with an empty environment: PATH (node) and HOME are all the test lends it.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' };
  for (const assignments of unit.get('Service')?.get('Environment') ?? []) {
    for (const a of place(assignments).split(/\s+/)) env[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
  }
  // An EnvironmentFile overrides Environment= (systemd.exec(5)).
  for (const f of unit.get('Service')?.get('EnvironmentFile') ?? [])
    Object.assign(env, parseEnvFile(readFileSync(place(f), 'utf8')));
  const dir = unit.get('Service')?.get('WorkingDirectory');
  return { unit, command: command!, args, env, cwd: dir ? place(dir[0]!) : REPO };
}

export interface Running {
  url: string;
  output: () => string;
  /** SIGTERM; resolves with the exit code and how long the stop took. */
  stop(): Promise<{ code: number | null; ms: number }>;
}

export async function startUnit(
  file: string,
  paths: Record<string, string>,
  options: { instance?: string; env?: Record<string, string> } = {},
): Promise<Running> {
  const { command, args, env, cwd } = unitCommand(file, paths, options.instance);
  Object.assign(env, options.env);
  const proc = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${env.PORT}`;
  const early = exited.then((code) => {
    throw new Error(`${file} exited with ${code} before it was ready:\n${out}`);
  });
  await Promise.race([
    waitFor(`${file} ready`, async () => (await fetch(`${url}/readyz`)).status === 200, 90_000),
    early,
  ]);
  early.catch(() => {});
  return {
    url,
    output: () => out,
    async stop() {
      const t0 = Date.now();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const code = await exited;
      return { code, ms: Date.now() - t0 };
    },
  };
}

export function run(command: string, args: string[], env: Record<string, string> = {}, cwd = REPO) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      command,
      args,
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

export async function runOk(command: string, args: string[], env?: Record<string, string>): Promise<string> {
  const r = await run(command, args, env);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export const withEnv = (envFile: string, ...argv: string[]) => runOk(join(DEPLOY, 'with-env.sh'), [envFile, ...argv]);
export const CAIRN_BIN = join(REPO, 'node_modules', '.bin', 'cairn');

/**
 * What the alert rules read that `exposition` lacks: a metric not declared (# TYPE: a labelled counter nothing
 * has counted yet has no sample), or a route or queue matcher that matches no series. Empty when all is there.
 */
export function alertsUnreadable(exposition: string): string[] {
  const rules = parseYaml(read('docs/deploy/alerts.yml')).groups.flatMap((g: { rules: { expr: string }[] }) => g.rules);
  const declared = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  const missing: string[] = [];
  for (const { expr } of rules) {
    for (const [name] of expr.matchAll(/\bcairn_[a-z0-9_]+/g)) {
      if (!declared.has(name) && !declared.has(name.replace(/_(bucket|sum|count)$/, '')))
        missing.push(`${name} in ${expr}`);
    }
    for (const [, label, op, value] of expr.matchAll(/\b(route|queue)(=~|=)"([^"]+)"/g)) {
      const seen = [...exposition.matchAll(new RegExp(`${label}="([^"]*)"`, 'g'))].map((m) => m[1]!);
      const match = op === '=' ? (v: string) => v === value : (v: string) => new RegExp(`^(?:${value})$`).test(v);
      if (!seen.some(match)) missing.push(`${label}${op}"${value}" in ${expr}`);
    }
  }
  return missing;
}

/** GET /metrics with the bearer token it needs. */
export async function scrape(url: string, token: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET ${url}/metrics: HTTP ${res.status}`);
  return res.text();
}

/** nginx.conf's server_name, which the test's certificate and CAIRN_PUBLIC_URL use. */
export const PUBLIC_NAME = 'cairn.example.com';

/**
 * nginx.conf as written, around an nginx of the test's own: its listen addresses, certificate and upstream
 * lines are the only lines replaced (each replacement must find its line), with a self-signed certificate.
 */
export async function startNginx(nginx: string, work: string, ingestPorts: string[]) {
  const dir = join(work, 'nginx');
  await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o777 });
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${PUBLIC_NAME}`,
    '-addext',
    `subjectAltName=DNS:${PUBLIC_NAME}`,
    '-keyout',
    join(dir, 'privkey.pem'),
    '-out',
    join(dir, 'fullchain.pem'),
  ]);
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  let site = read('docs/deploy/nginx.conf');
  const replace = (from: string, to: string) => {
    if (!site.includes(from)) throw new Error(`nginx.conf has no ${JSON.stringify(from)} any more: update the test`);
    site = site.replaceAll(from, to);
  };
  replace('    server 127.0.0.1:8787 max_fails=0;\n', '');
  replace(
    '    # server 127.0.0.1:8788 max_fails=0;\n',
    ingestPorts.map((p) => `    server 127.0.0.1:${p} max_fails=0;\n`).join(''),
  );
  replace('    listen [::]:80;\n', '');
  replace('    listen [::]:443 ssl http2;\n', '');
  replace('listen 80;', `listen 127.0.0.1:${httpPort};`);
  replace('listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`);
  replace(`/etc/letsencrypt/live/${PUBLIC_NAME}/`, `${dir}/`);
  await writeFile(join(dir, 'cairn.conf'), site);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${dir}/tmp/${t};`)
    .join(' ');
  await writeFile(
    join(dir, 'nginx.conf'),
    `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;\nevents {}\nhttp { access_log off; ${temp} include ${dir}/cairn.conf; }\n`,
  );
  const proc = spawn(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ca = readFileSync(join(dir, 'fullchain.pem'));
  const request = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: httpsPort,
          servername: PUBLIC_NAME,
          ca,
          method,
          path,
          headers: { host: PUBLIC_NAME, ...(data ? { 'content-type': 'application/json' } : {}), ...headers },
        },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  const early = exited.then(() => {
    throw new Error(`nginx exited:\n${out}`);
  });
  await Promise.race([
    waitFor('nginx answering', async () => (await request('GET', '/healthz')).status === 200),
    early,
  ]);
  early.catch(() => {});
  return {
    httpPort,
    request,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** A plain HTTP GET to a local port with an arbitrary Host (fetch cannot set one): status and Location. */
export function httpGet(
  port: number,
  path: string,
  host = 'anything.example',
): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    httpGet_({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: res.headers.location });
    }).on('error', reject);
  });
}
