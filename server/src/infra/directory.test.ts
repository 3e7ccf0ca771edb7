import { describe, expect, it } from 'vitest';
import type { Logger } from '../log.ts';
import { createDirectory } from './directory.ts';

interface Row {
  id: string;
  alias?: string;
  name: string;
}

const quiet: Logger = { info: () => {}, debug: () => {}, error: () => {} };

/** A table in memory: rows, a fingerprint that moves with each change, and counts of what was read. */
function fakeTable(rows: Row[]) {
  const table = {
    rows,
    version: 1,
    loads: 0,
    checks: 0,
    active: 0,
    most: 0,
    hold: null as Promise<void> | null,
    failNext: false,
    change(next: Row[]) {
      table.rows = next;
      table.version++;
    },
    async fingerprint() {
      table.checks++;
      return String(table.version);
    },
    async load() {
      table.loads++;
      table.active++;
      table.most = Math.max(table.most, table.active);
      try {
        await table.hold;
        if (table.failNext) {
          table.failNext = false;
          throw new Error('table unreadable');
        }
        return [...table.rows];
      } finally {
        table.active--;
      }
    },
  };
  return table;
}

function directoryOf(
  table: ReturnType<typeof fakeTable>,
  extra: { onChange?: (e: readonly Row[]) => Promise<void> } = {},
) {
  return createDirectory<Row>({
    name: 'test',
    load: table.load,
    keys: (r) => (r.alias ? [r.id, r.alias] : [r.id]),
    fingerprint: table.fingerprint,
    refreshMs: 60_000,
    log: quiet,
    ...extra,
  });
}

describe('createDirectory', () => {
  it('answers lookups from memory by every key of an entry', async () => {
    const table = fakeTable([
      { id: 'a', name: 'A' },
      { id: 'b', alias: 'old-b', name: 'B' },
    ]);
    const d = directoryOf(table);
    await d.start();
    expect(d.get('a')?.name).toBe('A');
    expect(d.get('old-b')?.name).toBe('B');
    expect(d.get('c')).toBeUndefined();
    expect(d.all().map((r) => r.id)).toEqual(['a', 'b']);
    expect(d.checkedAt()).toBeGreaterThan(0);
    expect(table.loads).toBe(1);
    await d.stop();
  });

  it('a plain reload reads the rows only when the fingerprint moved', async () => {
    const table = fakeTable([{ id: 'a', name: 'A' }]);
    const d = directoryOf(table);
    await d.start();
    await d.reload();
    expect(table.loads).toBe(1);
    expect(table.checks).toBe(2);
    table.change([{ id: 'a', name: 'A2' }]);
    await d.reload();
    expect(table.loads).toBe(2);
    expect(d.get('a')?.name).toBe('A2');
    await d.stop();
  });

  it('a fresh reload reads the rows even when the fingerprint did not move', async () => {
    const table = fakeTable([{ id: 'a', name: 'A' }]);
    const d = directoryOf(table);
    await d.start();
    table.rows = [{ id: 'a', name: 'changed in the same instant' }];
    await d.reload({ fresh: true });
    expect(d.get('a')?.name).toBe('changed in the same instant');
    await d.stop();
  });

  it('never overlaps loads: plain reloads join the one under way, a fresh one runs after it', async () => {
    const table = fakeTable([{ id: 'a', name: 'A' }]);
    const d = directoryOf(table);
    await d.start();
    let release!: () => void;
    table.hold = new Promise((r) => {
      release = r;
    });
    table.change([{ id: 'a', name: 'A2' }]);
    const first = d.reload();
    const joined = d.reload();
    expect(joined).toBe(first);
    // A change committed while the first load may already have read: a fresh load follows it.
    const fresh1 = d.reload({ fresh: true });
    const fresh2 = d.reload({ fresh: true });
    expect(fresh2).toBe(fresh1);
    release();
    table.hold = null;
    await Promise.all([first, fresh1]);
    expect(table.loads).toBe(3);
    expect(table.most).toBe(1);
    await d.stop();
  });

  it('runs onChange inside the load that changed the entries, and only then', async () => {
    const table = fakeTable([{ id: 'a', name: 'A' }]);
    const seen: string[][] = [];
    const d = directoryOf(table, {
      onChange: async (entries) => {
        seen.push(entries.map((e) => e.name));
      },
    });
    await d.start();
    await d.reload();
    table.change([{ id: 'b', name: 'B' }]);
    await d.reload();
    expect(seen).toEqual([['A'], ['B']]);
    await d.stop();
  });

  it('a failed load (or onChange) is tried again by the next reload', async () => {
    const table = fakeTable([{ id: 'a', name: 'A' }]);
    let failChange = true;
    const d = directoryOf(table, {
      onChange: async () => {
        if (failChange) {
          failChange = false;
          throw new Error('worker did not start');
        }
      },
    });
    await expect(d.start()).rejects.toThrow('worker did not start');
    // Same fingerprint, but the last load did not complete: this one reads and calls onChange again.
    await d.reload();
    expect(table.loads).toBe(2);
    table.failNext = true;
    table.change([{ id: 'b', name: 'B' }]);
    await expect(d.reload()).rejects.toThrow('table unreadable');
    expect(d.get('a')?.name).toBe('A');
    await d.reload();
    expect(d.get('b')?.name).toBe('B');
    await d.stop();
  });

  it('stop() waits for the load under way', async () => {
    const table = fakeTable([{ id: 'a', name: 'A' }]);
    const d = directoryOf(table);
    await d.start();
    let release!: () => void;
    table.hold = new Promise((r) => {
      release = r;
    });
    const loading = d.reload({ fresh: true });
    let stopped = false;
    const stopping = d.stop().then(() => {
      stopped = true;
    });
    await Promise.resolve();
    expect(stopped).toBe(false);
    release();
    await stopping;
    await loading;
    expect(table.active).toBe(0);
  });
});
