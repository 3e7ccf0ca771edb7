/** Coalesces concurrent submissions into group writes. */
export interface Batcher<In, Out> {
  /** Resolves with this item's result once the group that carried it has been written. */
  submit(item: In): Promise<Out>;
  /** Items waiting for a group plus group writes in flight (a write of many items counts once); 0 when idle. */
  pending(): number;
  /** Waits until everything submitted so far has settled. */
  drain(): Promise<void>;
}

interface Waiting<In, Out> {
  item: In;
  resolve(out: Out): void;
  reject(err: unknown): void;
}

/**
 * Group commit without a fixed delay: with no write in flight, an item is written at the next tick
 * (with whatever else arrived in that tick); items arriving while a write is in flight wait and go
 * together in the next one. A second (up to `concurrency`) write starts only once `parallelWeight`
 * is waiting: parallel one-row transactions would each pay a commit's fixed cost (measured: 690
 * commits/s carrying 1.4 events each at 1,000 req/s), while big batches do gain from parallelism.
 *
 * @example
 * const b = createBatcher({
 *   write: async (xs) => xs.map(() => 'ok'), weight: () => 1, maxWeight: 500, concurrency: 4, parallelWeight: 100,
 * });
 * await b.submit(row);
 */
export function createBatcher<In, Out>(options: {
  write(items: In[]): Promise<Out[]>;
  weight(item: In): number;
  maxWeight: number;
  concurrency: number;
  /** Waiting weight that justifies a write in parallel with one already in flight. */
  parallelWeight: number;
}): Batcher<In, Out> {
  let queue: Waiting<In, Out>[] = [];
  let queuedWeight = 0;
  let inflight = 0;
  let scheduled = false;
  const idle: Array<() => void> = [];

  function take(): Waiting<In, Out>[] {
    let weight = 0;
    let n = 0;
    while (n < queue.length && (n === 0 || weight + options.weight(queue[n]!.item) <= options.maxWeight)) {
      weight += options.weight(queue[n]!.item);
      n++;
    }
    const group = queue.slice(0, n);
    queue = queue.slice(n);
    queuedWeight -= weight;
    return group;
  }

  function pump(): void {
    scheduled = false;
    while (queue.length > 0 && inflight < options.concurrency) {
      if (inflight > 0 && queuedWeight < options.parallelWeight) break; // the running write's end pumps again
      const group = take();
      inflight++;
      options
        .write(group.map((w) => w.item))
        .then(
          (outs) => {
            for (const [i, w] of group.entries()) w.resolve(outs[i]!);
          },
          (err) => {
            for (const w of group) w.reject(err);
          },
        )
        .finally(() => {
          inflight--;
          if (queue.length > 0) schedule();
          else if (inflight === 0) for (const done of idle.splice(0)) done();
        });
    }
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  }

  return {
    submit(item) {
      return new Promise<Out>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        queuedWeight += options.weight(item);
        schedule();
      });
    },
    pending: () => queue.length + inflight,
    drain() {
      if (queue.length === 0 && inflight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}
