/** Coalesces concurrent submissions into group writes. */
export interface Batcher<In, Out> {
  /** Resolves with this item's result once the group that carried it has been written. */
  submit(item: In): Promise<Out>;
  /** Items submitted and not yet settled. */
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
 * Group commit without a fixed delay: an item submitted while fewer than `concurrency` writes are
 * in flight is written at the next tick (with whatever else arrived in that tick); items arriving
 * while all writers are busy wait and go together in the next write. Under light load a request
 * pays one small transaction; under heavy load transactions grow instead of queueing up.
 *
 * @example
 * const b = createBatcher({ write: async (xs) => xs.map(() => 'ok'), weight: () => 1, maxWeight: 500, concurrency: 4 });
 * await b.submit(row);
 */
export function createBatcher<In, Out>(options: {
  write(items: In[]): Promise<Out[]>;
  weight(item: In): number;
  maxWeight: number;
  concurrency: number;
}): Batcher<In, Out> {
  let queue: Waiting<In, Out>[] = [];
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
    return group;
  }

  function pump(): void {
    scheduled = false;
    while (queue.length > 0 && inflight < options.concurrency) {
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
