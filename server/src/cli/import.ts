// `cairn import <file> --map col=target,... [--dry-run]`: uploads a CSV or NDJSON file to a running
// server's POST /api/imports (streamed from disk, never read whole), shows a progress line from
// GET /api/imports/{id}, and resumes by itself when the upload is cut (the server skips committed lines).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';

const USAGE = `usage: cairn import <file> --map <column=target,...> [--dry-run] [--format csv|ndjson]
                    [--url http://127.0.0.1:8787] [--resume <import id>]
       cairn import <file> --kind events [--map <column=path,...>] [--trigger-flows] [--deliver] [--dry-run] ...
  target: trait:<name>[:string|number|boolean|date], identity:userId|anonymousId|email|phone,
          consent:<purpose>, tag:<static tag>, skip
  events: one Segment event per NDJSON line, or a CSV whose header (or --map column=path[:type])
          names type, event, userId, anonymousId, timestamp, properties.<name>, ...; no flow and no
          destination reacts to them unless --trigger-flows / --deliver
  The API key comes from CAIRN_API_KEY (or CAIRN_ADMIN_API_KEY); it needs profiles:write.
`;
const ATTEMPTS = 5;

interface ImportState {
  id: string;
  status: string;
  rowsDone: number;
  rowsBad: number;
  rowsUnchanged: number;
  profilesCreated: number;
  profilesUpdated: number;
  eventsStored?: number;
  rowsExpected: number | null;
  rowsPerSecond: number;
  etaSeconds: number | null;
  lastLine: number;
  error: string | null;
}

async function countRows(file: string, header: boolean): Promise<number> {
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line.trim()) n++;
  }
  return header ? Math.max(0, n - 1) : n;
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** The progress line: rows done of expected, rate, ETA, bad rows. */
export function progressLine(s: ImportState): string {
  const of = s.rowsExpected ? `/${fmt(s.rowsExpected)} (${Math.floor((100 * s.rowsDone) / s.rowsExpected)}%)` : '';
  const eta = s.etaSeconds === null ? '' : `  ETA ${s.etaSeconds}s`;
  return `import ${s.id}: ${fmt(s.rowsDone)}${of} rows  ${fmt(s.rowsPerSecond)} rows/s${eta}  bad ${fmt(s.rowsBad)}`;
}

/**
 * Runs `cairn import`; returns the exit code.
 *
 * @example
 * process.exit(await importCommand(['people.csv', '--map', 'id=identity:userId,mail=identity:email']));
 */
export async function importCommand(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        map: { type: 'string' },
        kind: { type: 'string' },
        'trigger-flows': { type: 'boolean' },
        deliver: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        format: { type: 'string' },
        url: { type: 'string' },
        resume: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`cairn import: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [file, ...extra] = positionals;
  const events = values.kind === 'events';
  if (values.kind !== undefined && values.kind !== 'profiles' && !events) {
    process.stderr.write(`cairn import: --kind is profiles or events\n${USAGE}`);
    return 2;
  }
  if (!file || extra.length || (!values.map && !values.resume && !events)) {
    process.stderr.write(`cairn import: ${file ? 'needs --map' : 'needs a file'}\n${USAGE}`);
    return 2;
  }
  const format = values.format ?? (/\.(nd)?jsonl?$/i.test(file) || /\.ndjson$/i.test(file) ? 'ndjson' : 'csv');
  const key = process.env.CAIRN_API_KEY ?? process.env.CAIRN_ADMIN_API_KEY;
  if (!key) {
    process.stderr.write('cairn import: set CAIRN_API_KEY to an API key with profiles:write\n');
    return 2;
  }
  await stat(file);
  const base = (values.url ?? process.env.CAIRN_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8787}`).replace(
    /\/$/,
    '',
  );
  const api = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${base}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, ...(init.headers ?? {}) },
    });
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
    if (!res.ok) throw new Error(`${res.status}: ${body?.error?.message ?? JSON.stringify(body)}`);
    return body as unknown;
  };

  let id = values.resume;
  if (!id) {
    const rows = await countRows(file, format === 'csv');
    const created = (await api('/imports', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        format,
        map: values.map,
        dryRun: values['dry-run'] === true,
        rows,
        ...(events
          ? { kind: 'events', triggerFlows: values['trigger-flows'] === true, deliver: values.deliver === true }
          : {}),
      }),
    })) as ImportState;
    id = created.id;
  }
  const tty = process.stderr.isTTY;
  const show = (s: ImportState) => process.stderr.write(tty ? `\r${progressLine(s)}\x1b[K` : `${progressLine(s)}\n`);
  const poll = setInterval(
    () => {
      api(`/imports/${id}`).then(
        (s) => show(s as ImportState),
        () => {},
      );
    },
    tty ? 500 : 5000,
  );
  let final: ImportState | undefined;
  try {
    for (let attempt = 1; attempt <= ATTEMPTS && !final; attempt++) {
      try {
        final = (await api(`/imports/${id}/data`, {
          method: 'PUT',
          headers: { 'content-type': format === 'csv' ? 'text/csv' : 'application/x-ndjson' },
          body: Readable.toWeb(createReadStream(file)) as ReadableStream,
          duplex: 'half',
        } as RequestInit)) as ImportState;
      } catch (err) {
        const state = (await api(`/imports/${id}`).catch(() => undefined)) as ImportState | undefined;
        if (state?.status === 'done') final = state;
        else if (attempt === ATTEMPTS) throw err;
        else
          process.stderr.write(
            `\ncairn import: ${(err as Error).message}; resuming after line ${state?.lastLine ?? '?'}\n`,
          );
      }
    }
  } catch (err) {
    process.stderr.write(`\ncairn import: ${(err as Error).message} (resume with --resume ${id})\n`);
    return 1;
  } finally {
    clearInterval(poll);
  }
  show(final!);
  process.stderr.write('\n');
  const f = final!;
  const what =
    f.eventsStored !== undefined && events
      ? `${fmt(f.eventsStored)} events stored, ${fmt(f.rowsUnchanged)} stored before`
      : `${fmt(f.profilesCreated)} profiles created, ${fmt(f.profilesUpdated)} updated, ${fmt(f.rowsUnchanged)} unchanged`;
  process.stdout.write(
    `import ${f.id}${values['dry-run'] ? ' (dry run: nothing was written)' : ''}: ${fmt(f.rowsDone)} rows, ` +
      `${what}, ${fmt(f.rowsBad)} bad\n`,
  );
  if (f.rowsBad) {
    const errors = (await api(`/imports/${id}/errors?limit=20`)) as { data: { line: number; reason: string }[] };
    for (const e of errors.data) process.stdout.write(`  line ${e.line}: ${e.reason}\n`);
    if (f.rowsBad > errors.data.length) process.stdout.write(`  ... all of them: GET /api/imports/${id}/errors\n`);
  }
  return 0;
}
