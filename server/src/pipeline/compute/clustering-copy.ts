import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Tx } from '../../db/index.ts';

// COPY in both directions for a clustering run on Postgres: a million profiles' features come out as
// one text stream (no cursor pages, no float8[] literals to parse), and their cluster ids go back in as
// one, into the run's temporary table. The embedded database (PGlite) has no COPY over the wire: there
// the run pages with a cursor and inserts arrays (clustering-queries.ts).

/** Rows streamed out of a `COPY (...) TO STDOUT`: the tab-separated fields of each line (`\N`: null). */
export async function copyOut(
  query: { readable(): Promise<AsyncIterable<Buffer>> },
  onLine: (fields: string[]) => void,
): Promise<void> {
  const stream = await query.readable();
  let rest = '';
  for await (const chunk of stream) {
    // Every field is a uuid, a number or \N: ASCII, so a chunk boundary never splits a character.
    const text = rest + chunk.toString('latin1');
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      rest = text;
      continue;
    }
    rest = text.slice(end + 1);
    const lines = text.slice(0, end).split('\n');
    for (const line of lines) onLine(line.split('\t'));
  }
  if (rest) onLine(rest.split('\t'));
}

/**
 * Streams `(profile_id, value)` pairs into a table with `COPY ... FROM STDIN` (text format), a block of
 * lines at a time, respecting the stream's back-pressure.
 *
 * @example
 * await copyIn(tx, 'clustering_result', ids, values);
 */
export async function copyIn(tx: Tx, table: string, ids: readonly string[], values: Int32Array): Promise<void> {
  const writable = await tx`COPY ${tx(table)} (profile_id, value) FROM STDIN`.writable();
  const BLOCK = 10_000;
  function* blocks() {
    for (let i = 0; i < ids.length; i += BLOCK) {
      let s = '';
      const end = Math.min(ids.length, i + BLOCK);
      for (let j = i; j < end; j++) s += `${ids[j]}\t${values[j]}\n`;
      yield s;
    }
  }
  await pipeline(Readable.from(blocks()), writable);
}
