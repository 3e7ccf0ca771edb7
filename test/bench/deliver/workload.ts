import { type ClientEvent, EventShapes, type Person, seeded } from '../identify/people.ts';

// The events of bench:deliver: identified people (userId and one of their devices on every event, so
// stage 2 never has two profiles to merge) browsing a shop. Each person signs up first (identify with
// email and traits); then page views (30%), product events (60%) and trait updates (10%). A messageId
// is `<prefix><n>`, so an idempotency key `<messageId>:<destination>` names the event it carries.

/**
 * Each person's sign-up: an identify with userId, first device, email and traits.
 *
 * @example
 * const signUps = signUpsOf(people, 'b-', start);
 */
export function signUpsOf(people: readonly Person[], prefix: string, start: number, seed = 1): ClientEvent[] {
  const shapes = new EventShapes(seeded(seed));
  return people.map((p, i) =>
    shapes.identify(
      `${prefix}s${p.index}`,
      start + i,
      { userId: p.userId, anonymousId: p.anon[0]! },
      { email: p.email, name: p.name, plan: shapes.plan(), createdAt: new Date(start).toISOString() },
    ),
  );
}

/** Generates events of people who signed up already. */
export class Activity {
  private readonly rand;
  private readonly shapes;
  private n = 0;

  constructor(
    private readonly people: readonly Person[],
    private readonly prefix: string,
    seed: number,
  ) {
    this.rand = seeded(seed);
    this.shapes = new EventShapes(seeded(seed + 1));
  }

  /** Events made so far. */
  get count(): number {
    return this.n;
  }

  /** The next event, stamped `ts` as the SDK would. */
  next(ts: number): ClientEvent {
    const p = this.people[Math.floor(this.rand() * this.people.length)]!;
    const ids = { userId: p.userId, anonymousId: p.anon[Math.floor(this.rand() * p.anon.length)]! };
    const id = `${this.prefix}${this.n++}`;
    const v = this.rand();
    if (v < 0.6) return this.shapes.track(id, ts, ids);
    if (v < 0.9) return this.shapes.page(id, ts, ids);
    return this.shapes.identify(id, ts, ids, { email: p.email, plan: this.shapes.plan() });
  }
}
