import type { Comparison, EventCondition, EventFilter, Rule } from '../rules/ast.ts';
import type {
  BranchCase,
  CalendarTrigger,
  DateTraitTrigger,
  Duration,
  Edge,
  FlowDefinition,
  FlowNode,
  JsonValue,
  LocalTime,
  Reentry,
  SendNode,
  Trigger,
  WaitForEventNode,
  WebhookNode,
  Weekday,
} from './ast.ts';
import { type FlowIssue, validateFlow } from './validate.ts';

/** A node's own id and name in the builder (an id is made from its type when none is given). */
export interface NodeOptions {
  id?: string;
  name?: string;
}

/** A flow that did not validate: the issues, each naming its node. */
export class FlowError extends Error {
  constructor(readonly issues: FlowIssue[]) {
    super(
      `invalid flow: ${issues.map((i) => `${i.node ? `${i.node}: ` : ''}${i.path ? `${i.path}: ` : ''}${i.message}`).join('; ')}`,
    );
    this.name = 'FlowError';
  }
}

type Draft = Omit<FlowDefinition, 'trigger'> & { trigger?: Trigger };
// A node before it has an id (distributed over the union: each type keeps its own fields).
type NewNode = FlowNode extends infer N ? (N extends FlowNode ? Omit<N, 'id' | 'name'> : never) : never;

/** What a path ended with: the whole flow, to build. */
export interface Finished {
  /** The definition, validated; throws a `FlowError` naming the nodes otherwise. */
  build(): FlowDefinition;
  /** The definition as built so far, not validated. */
  draft(): Draft;
}

/** One path of a flow being built: each step adds a node after the last one. */
export class PathBuilder implements Finished {
  protected constructor(
    protected readonly root: Draft,
    private tail: { from: string; on: string } | null,
  ) {}

  private add(node: NewNode, options: NodeOptions = {}): string {
    const nodes = this.root.nodes;
    let id = options.id;
    for (let n = nodes.length + 1; id === undefined; n++) {
      const candidate = `${node.type}_${n}`;
      if (!nodes.some((x) => x.id === candidate)) id = candidate;
    }
    nodes.push({ id, ...(options.name ? { name: options.name } : {}), ...node } as FlowNode);
    if (this.tail) this.root.edges.push({ from: this.tail.from, to: id, on: this.tail.on });
    return id;
  }

  private append(node: NewNode, options?: NodeOptions): this {
    this.tail = { from: this.add(node, options), on: 'next' };
    return this;
  }

  private fork(
    node: NewNode,
    options: NodeOptions | undefined,
    paths: [string, (p: PathBuilder) => unknown][],
  ): Finished {
    const id = this.add(node, options);
    for (const [on, build] of paths) build(new PathBuilder(this.root, { from: id, on }));
    this.tail = null;
    return this;
  }

  /** Waits an elapsed time (a day is 24 hours). */
  wait(duration: Duration, options?: NodeOptions): this {
    return this.append({ type: 'wait', duration }, options);
  }

  /** Waits until a local time of day in the person's zone (on given weekdays). */
  waitUntil(time: LocalTime, weekdays?: Weekday[], options?: NodeOptions): this {
    return this.append({ type: 'wait_until', until: weekdays ? { time, weekdays } : { time } }, options);
  }

  /** Waits until a date trait ± days (at a local time); `missing` runs when the trait is no date. */
  waitUntilTrait(
    trait: string,
    at: { offsetDays?: number; time?: LocalTime } = {},
    options?: NodeOptions & { missing?: (p: PathBuilder) => unknown },
  ): this {
    const id = this.add({ type: 'wait_until', until: { trait, ...at } }, options);
    if (options?.missing) options.missing(new PathBuilder(this.root, { from: id, on: 'missing' }));
    this.tail = { from: id, on: 'next' };
    return this;
  }

  /** Waits for an event (or the timeout): each outcome continues on its own path. */
  waitForEvent(
    event: EventFilter,
    timeout: Duration,
    paths: { matched: (p: PathBuilder) => unknown; timeout: (p: PathBuilder) => unknown },
    options?: NodeOptions & Pick<WaitForEventNode, 'match' | 'keep'>,
  ): Finished {
    const { match, keep, ...ids } = options ?? {};
    const node = {
      type: 'wait_for_event' as const,
      event,
      timeout,
      ...(match ? { match } : {}),
      ...(keep ? { keep } : {}),
    };
    return this.fork(node, ids, [
      ['matched', paths.matched],
      ['timeout', paths.timeout],
    ]);
  }

  /** The first case that holds decides the path; `otherwise` when none does. */
  branch(
    cases: (BranchCase & { path: (p: PathBuilder) => unknown })[],
    otherwise: (p: PathBuilder) => unknown,
    options?: NodeOptions,
  ): Finished {
    const plain = cases.map(({ path: _path, ...c }) => c);
    return this.fork({ type: 'branch', cases: plain }, options, [
      ...cases.map((c, i) => [`case:${i}`, c.path] as [string, (p: PathBuilder) => unknown]),
      ['else', otherwise],
    ]);
  }

  /** A random split by percentages, the same path for the same person every time. */
  split(
    paths: { percent: number; name?: string; path: (p: PathBuilder) => unknown }[],
    options?: NodeOptions,
  ): Finished {
    const plain = paths.map(({ path: _path, ...p }) => p);
    return this.fork(
      { type: 'split', paths: plain },
      options,
      paths.map((p, i) => [`path:${i}`, p.path]),
    );
  }

  /**
   * Sends a message through a destination (subject and body are templates); `onCap` and `transactional`
   * as the send node has them (governance.ts).
   */
  send(
    destination: string,
    message: SendNode['message'],
    options?: NodeOptions & Pick<SendNode, 'onCap' | 'transactional'>,
  ): this {
    const { onCap, transactional, ...rest } = options ?? {};
    return this.append(
      {
        type: 'send',
        destination,
        message,
        ...(onCap ? { onCap } : {}),
        ...(transactional !== undefined ? { transactional } : {}),
      },
      rest,
    );
  }

  /** Sets and unsets traits, adds and removes static tags. */
  updateProfile(
    change: { set?: Record<string, JsonValue>; unset?: string[]; addTags?: string[]; removeTags?: string[] },
    options?: NodeOptions,
  ): this {
    return this.append({ type: 'update_profile', ...change }, options);
  }

  /** Calls a webhook; `keep` copies fields of its JSON response into the run's data. */
  webhook(
    call: Omit<WebhookNode, 'id' | 'name' | 'type'>,
    options?: NodeOptions & { failed?: (p: PathBuilder) => unknown },
  ): this {
    const id = this.add({ type: 'webhook', ...call }, options);
    if (options?.failed) options.failed(new PathBuilder(this.root, { from: id, on: 'failed' }));
    this.tail = { from: id, on: 'next' };
    return this;
  }

  /** A plugin action of a destination; `keep` copies fields of its output into the run's data. */
  action(
    destination: string,
    action: string,
    input: Record<string, JsonValue> = {},
    options?: NodeOptions & { keep?: Record<string, string>; failed?: (p: PathBuilder) => unknown },
  ): this {
    const { keep, failed, ...ids } = options ?? {};
    const id = this.add({ type: 'action', destination, action, input, ...(keep ? { keep } : {}) }, ids);
    if (failed) failed(new PathBuilder(this.root, { from: id, on: 'failed' }));
    this.tail = { from: id, on: 'next' };
    return this;
  }

  /** Ends the run here. */
  exit(options?: NodeOptions): Finished {
    this.add({ type: 'exit' }, options);
    this.tail = null;
    return this;
  }

  /** Continues at a node built elsewhere (joins paths, or loops back to a wait). */
  goto(id: string): Finished {
    if (this.tail) this.root.edges.push({ from: this.tail.from, to: id, on: this.tail.on });
    this.tail = null;
    return this;
  }

  draft(): Draft {
    return structuredClone(this.root);
  }

  build(): FlowDefinition {
    const v = validateFlow(this.draft());
    if (!v.ok) throw new FlowError(v.issues);
    return v.flow;
  }
}

/** The triggers, each setting the flow's and returning its builder. */
export interface TriggerBuilder<B> {
  event(event: string, where?: EventCondition[]): B;
  audienceEntered(audience: string): B;
  audienceExited(audience: string): B;
  tagAdded(tag: string): B;
  tagRemoved(tag: string): B;
  traitChanged(trait: string, to?: Comparison, computed?: boolean): B;
  dateTrait(trait: string, at: Omit<DateTraitTrigger, 'type' | 'trait'>): B;
  schedule(cron: string, timezone: string, audience: string): B;
  calendar(calendar: CalendarTrigger['calendar'], at: Omit<CalendarTrigger, 'type' | 'calendar'>): B;
  api(data?: string[]): B;
}

/** The start of a flow in code: its settings, its trigger, then its first path. */
export class FlowBuilder extends PathBuilder {
  constructor(name: string, options: { timezone?: string } = {}) {
    const root: Draft = {
      version: 1,
      name,
      ...(options.timezone ? { timezone: options.timezone } : {}),
      entry: { reentry: 'once' },
      nodes: [],
      edges: [] as Edge[],
    };
    super(root, null);
  }

  private set(trigger: Trigger): this {
    this.root.trigger = trigger;
    return this;
  }

  /** Who enters, when. */
  get trigger(): TriggerBuilder<this> {
    return {
      event: (event: string, where?: EventCondition[]) =>
        this.set({ type: 'event', event, ...(where ? { where } : {}) }),
      audienceEntered: (audience: string) => this.set({ type: 'audience_entered', audience }),
      audienceExited: (audience: string) => this.set({ type: 'audience_exited', audience }),
      tagAdded: (tag: string) => this.set({ type: 'tag_added', tag }),
      tagRemoved: (tag: string) => this.set({ type: 'tag_removed', tag }),
      traitChanged: (trait: string, to?: Comparison, computed?: boolean) =>
        this.set({ type: 'trait_changed', trait, ...(to ? { to } : {}), ...(computed ? { computed } : {}) }),
      dateTrait: (trait: string, at: Omit<DateTraitTrigger, 'type' | 'trait'>) =>
        this.set({ type: 'date_trait', trait, ...at }),
      schedule: (cron: string, timezone: string, audience: string) =>
        this.set({ type: 'schedule', cron, timezone, audience }),
      calendar: (calendar: CalendarTrigger['calendar'], at: Omit<CalendarTrigger, 'type' | 'calendar'>) =>
        this.set({ type: 'calendar', calendar, ...at }),
      api: (data?: string[]) => this.set({ type: 'api', ...(data ? { data } : {}) }),
    };
  }

  /** Entry: a rule on the profile, the re-entry policy, several runs at once. */
  entry(entry: { rule?: Rule; reentry?: Reentry; concurrent?: boolean }): this {
    this.root.entry = { ...this.root.entry, ...entry };
    return this;
  }

  /** A conversion event within a window after entry; `exit` ends the run when it comes. */
  goal(event: EventFilter, within: Duration, options: { exit: boolean }): this {
    const seconds =
      (within.days ?? 0) * 86_400 + (within.hours ?? 0) * 3600 + (within.minutes ?? 0) * 60 + (within.seconds ?? 0);
    this.root.goal = { event, withinSeconds: seconds, exit: options.exit };
    return this;
  }

  /** Goes first when runs of one person compete for a capped slot at the same moment (default 0). */
  priority(priority: number): this {
    this.root.priority = priority;
    return this;
  }

  /** A rule re-checked before every send: when it holds, the run ends instead. */
  exitWhen(rule: Rule): this {
    this.root.exit = { rule };
    return this;
  }
}

/**
 * A typed builder for flows kept in code; `build()` returns the JSON definition the API stores,
 * validated (a `FlowError` names each node and reason otherwise).
 *
 * @example
 * const cart = flow('Cart abandoned')
 *   .trigger.event('Added To Cart')
 *   .goal({ event: 'Order Completed' }, { days: 3 }, { exit: true })
 *   .wait({ hours: 24 })
 *   .send('email', { subject: 'Still thinking?', body: 'Hi {{ traits.first_name | default: "there" }}' })
 *   .build();
 */
export function flow(name: string, options: { timezone?: string } = {}): FlowBuilder {
  return new FlowBuilder(name, options);
}
