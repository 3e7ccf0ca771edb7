import { anonymousId, type ClientEvent, EventShapes, type Person, seeded, type Visitor } from './people.ts';

// The measured events: 80% from known people (identity sets already stored), 15% from new anonymous
// visitors (a new anonymousId, so a new profile), 5% merging (an identify that joins an anonymous
// visitor's profile to an existing person's userId). Each event's messageId starts with the phase's
// prefix and its kind's letter (k, n, m), so results can be read back by kind.

export type Kind = 'known' | 'new' | 'merge';
export const KIND_LETTER: Record<Kind, string> = { known: 'k', new: 'n', merge: 'm' };

/** One measured event and the tracking endpoint it goes to as a single call. */
export interface WorkItem {
  kind: Kind;
  event: ClientEvent;
}

/** The mix of kinds, as fractions summing to 1. */
export const MIX: Readonly<Record<Kind, number>> = { known: 0.8, new: 0.15, merge: 0.05 };

/** Anonymous profiles available to merging events, shared by all phases so none is joined twice. */
export interface VisitorPool {
  visitors: Visitor[];
  next: number;
}

/**
 * Generates measured events. `recentShare` of the merging events join a visitor this workload itself
 * introduced at least `recentLag` events earlier (a new profile); the others join a visitor of the
 * setup (an existing anonymous profile).
 *
 * @example
 * const w = new Workload(people, pool, { prefix: 'd2-', seed: 7, recentShare: 0, recentLag: 0 });
 * const item = w.next(Date.now());
 */
export class Workload {
  private readonly rand;
  private readonly shapes;
  private n = 0;
  private readonly recent: { anon: string; n: number }[] = [];
  private readonly joined = new Set<number>();
  readonly counts: Record<Kind, number> = { known: 0, new: 0, merge: 0 };
  /** Merging events that join a visitor of this workload (the rest join one of the setup). */
  mergesOfRecent = 0;

  constructor(
    private readonly people: readonly Person[],
    private readonly pool: VisitorPool,
    private readonly options: { prefix: string; seed: number; recentShare: number; recentLag: number },
  ) {
    this.rand = seeded(options.seed);
    this.shapes = new EventShapes(seeded(options.seed + 1));
  }

  private person(): Person {
    return this.people[Math.floor(this.rand() * this.people.length)]!;
  }

  /** The next event, stamped `now` as the SDK would. */
  next(now: number): WorkItem {
    const r = this.rand();
    const kind: Kind = r < MIX.merge ? 'merge' : r < MIX.merge + MIX.new ? 'new' : 'known';
    const item = this.make(kind, now) ?? this.make('known', now)!;
    this.counts[item.kind]++;
    this.n++;
    return item;
  }

  private make(kind: Kind, now: number): WorkItem | null {
    const id = `${this.options.prefix}${KIND_LETTER[kind]}-${this.n}`;
    const s = this.shapes;
    if (kind === 'new') {
      const anon = anonymousId(this.rand);
      this.recent.push({ anon, n: this.n });
      return { kind, event: s.page(id, now, { anonymousId: anon }, true) };
    }
    if (kind === 'merge') {
      const anon = this.mergeTarget();
      if (!anon) return null;
      let p = this.person();
      // A person joins at most one visitor per run: five anonymousIds is the default limit per profile.
      while (this.joined.has(p.index)) p = this.person();
      this.joined.add(p.index);
      const traits = { email: p.email, name: p.name, plan: s.plan() };
      return { kind, event: s.identify(id, now, { userId: p.userId, anonymousId: anon }, traits) };
    }
    const p = this.person();
    const device = p.anon[Math.floor(this.rand() * p.anon.length)]!;
    const v = this.rand();
    // Sets the setup stored: {userId, device}, {device} alone, {userId, email, first device}.
    if (v < 0.45) return { kind, event: s.track(id, now, { userId: p.userId, anonymousId: device }) };
    if (v < 0.7) return { kind, event: s.page(id, now, { userId: p.userId, anonymousId: device }) };
    if (v < 0.85) return { kind, event: s.page(id, now, { anonymousId: device }) };
    const traits = { email: p.email, plan: s.plan() };
    return { kind, event: s.identify(id, now, { userId: p.userId, anonymousId: p.anon[0]! }, traits) };
  }

  private mergeTarget(): string | null {
    const head = this.recent[0];
    if (this.rand() < this.options.recentShare && head && head.n <= this.n - this.options.recentLag) {
      this.recent.shift();
      this.mergesOfRecent++;
      return head.anon;
    }
    const v = this.pool.visitors[this.pool.next];
    if (!v) return null;
    this.pool.next++;
    return v.anon;
  }
}
