// How Cairn grouped the work: its own Prometheus counters for group commits, read before and
// after a phase (commits per second, rows per commit, milliseconds per commit transaction).

/** Group commits during one phase. */
export interface CommitStats {
  perSec: number;
  rowsPerCommit: number;
  msPerCommit: number;
}

interface Totals {
  commits: number;
  rows: number;
  seconds: number;
  at: number;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

async function totals(baseUrl: string): Promise<Totals> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return {
    commits: metric(text, 'cairn_ingest_commit_group_events_count'),
    rows: metric(text, 'cairn_ingest_commit_group_events_sum'),
    seconds: metric(text, 'cairn_ingest_commit_duration_seconds_sum'),
    at: performance.now(),
  };
}

/**
 * Starts counting group commits on a Cairn server (through GET /metrics).
 *
 * @example
 * const stop = await commitMeter(server.url);
 * await run();
 * const stats = await stop();
 */
export async function commitMeter(baseUrl: string): Promise<() => Promise<CommitStats>> {
  const a = await totals(baseUrl);
  return async () => {
    const b = await totals(baseUrl);
    const commits = b.commits - a.commits;
    return {
      perSec: commits / ((b.at - a.at) / 1000),
      rowsPerCommit: (b.rows - a.rows) / commits,
      msPerCommit: ((b.seconds - a.seconds) * 1000) / commits,
    };
  };
}
