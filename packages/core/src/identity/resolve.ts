import {
  compareIdentities,
  compareStrings,
  type Identity,
  type IdentityOptions,
  type IdentityType,
  identityKey,
  limitOf,
} from './types.ts';

/**
 * All identities one event carries, observed at `ts` (epoch ms, the event's corrected timestamp).
 * Links with the same `eventId` are one event: their identities are united and the earliest `ts` kept.
 */
export interface IdentityLink {
  readonly eventId: string;
  readonly ts: number;
  readonly ids: readonly Identity[];
}

/** A position in the canonical order of links. */
export interface LinkRef {
  readonly ts: number;
  readonly eventId: string;
}

/** Two groups became one at `eventId`; `survivor` kept its key, `merged` was absorbed (keys as of then). */
export interface MergeStep extends LinkRef {
  readonly survivor: string;
  readonly merged: string;
}

/** A guard kept identities of one event apart; `groups` are the two group keys kept apart (as of then). */
export interface Refusal extends LinkRef {
  readonly type: IdentityType;
  readonly reason: string;
  readonly groups: readonly [string, string];
}

/** One group of identities: one profile. */
export interface Group {
  /** The key of the group's first identity, inherited through merges from the survivor. */
  readonly key: string;
  readonly identities: readonly Identity[];
  /** The link that created the group (the earliest of all groups merged into it). */
  readonly firstSeen: LinkRef;
  /** The earliest link that gave the group a userId, or null if it has none. */
  readonly identifiedAt: LinkRef | null;
  readonly merges: readonly MergeStep[];
}

/** The result of {@link resolveIdentities}: groups sorted by key, `groupOf` maps identityKey → group key. */
export interface Partition {
  readonly groups: readonly Group[];
  readonly groupOf: ReadonlyMap<string, string>;
  readonly refusals: readonly Refusal[];
}

interface Node {
  key: string;
  ids: Identity[];
  counts: Map<IdentityType, number>;
  firstSeen: LinkRef;
  identifiedAt: LinkRef | null;
  merges: MergeStep[];
  /** Set once merged into another node; a link's list of touched nodes may still hold it. */
  absorbed: boolean;
}

interface State {
  owner: Map<string, Node>;
  refusals: Refusal[];
  options: IdentityOptions;
}

/**
 * Canonical order of links: by timestamp, then event id (code-unit order).
 *
 * @example
 * compareRefs({ ts: 1, eventId: 'b' }, { ts: 1, eventId: 'a' }); // 1
 */
export function compareRefs(a: LinkRef, b: LinkRef): number {
  return a.ts - b.ts || compareStrings(a.eventId, b.eventId);
}

function earlier(a: LinkRef | null, b: LinkRef | null): LinkRef | null {
  if (!a) return b;
  if (!b) return a;
  return compareRefs(a, b) <= 0 ? a : b;
}

/**
 * The survivor rule, as a sort order (best first): identified groups before anonymous ones; then the
 * earliest userId; then the oldest group; then the smallest key.
 *
 * @example
 * groups.slice().sort(compareSurvivors)[0]; // the group that keeps its key when these merge
 */
export function compareSurvivors(
  a: Pick<Group, 'key' | 'firstSeen' | 'identifiedAt'>,
  b: Pick<Group, 'key' | 'firstSeen' | 'identifiedAt'>,
): number {
  if (a.identifiedAt && !b.identifiedAt) return -1;
  if (!a.identifiedAt && b.identifiedAt) return 1;
  const identified = a.identifiedAt && b.identifiedAt ? compareRefs(a.identifiedAt, b.identifiedAt) : 0;
  return identified || compareRefs(a.firstSeen, b.firstSeen) || compareStrings(a.key, b.key);
}

function checkOptions(options: IdentityOptions): void {
  const limits = [...Object.entries(options.limits ?? {}), ['defaultLimit', options.defaultLimit ?? 1] as const];
  for (const [type, n] of limits) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`identity limit for ${type} must be an integer >= 1`);
  }
}

/** Dedupes by eventId (uniting identities, keeping the earliest ts) and sorts canonically. */
function canonicalLinks(links: readonly IdentityLink[]): IdentityLink[] {
  const byEvent = new Map<string, { eventId: string; ts: number; ids: Map<string, Identity> }>();
  for (const link of links) {
    if (!Number.isFinite(link.ts)) throw new RangeError(`identity link ${link.eventId}: ts must be a finite number`);
    const entry = byEvent.get(link.eventId) ?? { eventId: link.eventId, ts: link.ts, ids: new Map() };
    byEvent.set(link.eventId, entry);
    entry.ts = Math.min(entry.ts, link.ts);
    for (const id of link.ids) entry.ids.set(identityKey(id), id);
  }
  return [...byEvent.values()]
    .map((e) => ({ eventId: e.eventId, ts: e.ts, ids: [...e.ids.values()].sort(compareIdentities) }))
    .sort(compareRefs);
}

function count(node: Node, type: IdentityType): number {
  return node.counts.get(type) ?? 0;
}

function addIdentity(state: State, node: Node, id: Identity, at: LinkRef): void {
  node.ids.push(id);
  node.counts.set(id.type, count(node, id.type) + 1);
  if (id.type === 'userId' && !node.identifiedAt) node.identifiedAt = at;
  state.owner.set(identityKey(id), node);
}

function newNode(state: State, id: Identity, at: LinkRef): Node {
  const node: Node = {
    key: identityKey(id),
    ids: [],
    counts: new Map(),
    firstSeen: at,
    identifiedAt: null,
    merges: [],
    absorbed: false,
  };
  addIdentity(state, node, id, at);
  return node;
}

function hasRoom(state: State, node: Node, type: IdentityType): boolean {
  return count(node, type) < limitOf(type, state.options);
}

/** The first type (canonical order) whose limit a merge of `a` and `b` would exceed, or null. */
function violation(state: State, a: Node, b: Node): IdentityType | null {
  const types = [...b.counts.keys()].sort((x, y) => compareIdentities({ type: x, value: '' }, { type: y, value: '' }));
  return types.find((t) => count(a, t) + count(b, t) > limitOf(t, state.options)) ?? null;
}

function merge(state: State, a: Node, b: Node, at: LinkRef): Node {
  const [survivor, merged] = compareSurvivors(a, b) <= 0 ? [a, b] : [b, a];
  const identifiedAt = earlier(a.identifiedAt, b.identifiedAt);
  for (const id of merged.ids) addIdentity(state, survivor, id, at);
  survivor.firstSeen = earlier(survivor.firstSeen, merged.firstSeen)!;
  survivor.identifiedAt = identifiedAt;
  merged.absorbed = true;
  survivor.merges = [...survivor.merges, ...merged.merges].sort((x, y) => compareRefs(x, y));
  survivor.merges.push({ ts: at.ts, eventId: at.eventId, survivor: survivor.key, merged: merged.key });
  return survivor;
}

function refuse(state: State, at: LinkRef, type: IdentityType, groups: [string, string], what: string): void {
  const reason = `${what} would put more than ${limitOf(type, state.options)} ${type} in one profile`;
  state.refusals.push({ ts: at.ts, eventId: at.eventId, type, reason, groups });
}

/**
 * Applies one link. The link's first identity (canonical order) is its anchor:
 * 1. an anchor not yet grouped joins the oldest touched group with room for it, else starts a group;
 * 2. every other touched group, oldest first, merges into the anchor's group unless a limit would be
 *    exceeded (refused, reported);
 * 3. each identity not yet grouped joins the anchor's group if its type has room, else starts a group
 *    of its own (refused, reported) — never another touched group, which would be someone else.
 */
function applyLink(state: State, link: IdentityLink): void {
  const [first, ...rest] = link.ids;
  if (!first) return;
  const at: LinkRef = { ts: link.ts, eventId: link.eventId };
  const touched = [...new Set(link.ids.map((id) => state.owner.get(identityKey(id))).filter((n) => n !== undefined))];
  touched.sort((a, b) => compareRefs(a.firstSeen, b.firstSeen) || compareStrings(a.key, b.key));
  let anchor = state.owner.get(identityKey(first));
  if (!anchor) {
    anchor = touched.find((node) => hasRoom(state, node, first.type));
    if (anchor) addIdentity(state, anchor, first, at);
    else anchor = newNode(state, first, at);
  }
  for (const node of touched) {
    if (node === anchor || node.absorbed) continue;
    const type = violation(state, anchor, node);
    if (type) refuse(state, at, type, [anchor.key, node.key], `merging ${node.key} into ${anchor.key}`);
    else anchor = merge(state, anchor, node, at);
  }
  for (const id of rest) {
    if (state.owner.has(identityKey(id))) continue;
    if (hasRoom(state, anchor, id.type)) addIdentity(state, anchor, id, at);
    else refuse(state, at, id.type, [anchor.key, newNode(state, id, at).key], `adding ${identityKey(id)}`);
  }
}

function toGroup(node: Node): Group {
  return {
    key: node.key,
    identities: [...node.ids].sort(compareIdentities),
    firstSeen: node.firstSeen,
    identifiedAt: node.identifiedAt,
    merges: node.merges,
  };
}

/**
 * Resolves identity links into groups (one per profile). A pure, deterministic function of the SET of
 * links: they are deduplicated by eventId, sorted by (ts, eventId) and replayed with the guards, so
 * any arrival order, any batching and any re-delivery gives the same partition. Guards: at most
 * `limitOf(type)` identities of a type per group (default userId 1, others 5); a merge or join that
 * would exceed one is refused and reported. With one userId per group this is the shared-device rule:
 * an anonymousId first seen with U1 stays with U1; a later U2 on that device gets a group of its own.
 * When groups merge, the survivor (see {@link compareSurvivors}) keeps its key.
 *
 * @example
 * const p = resolveIdentities([
 *   { eventId: 'e1', ts: 1, ids: [{ type: 'anonymousId', value: 'a1' }] },
 *   { eventId: 'e2', ts: 2, ids: [{ type: 'userId', value: 'u1' }, { type: 'anonymousId', value: 'a1' }] },
 * ]);
 * p.groupOf.get('userId:u1'); // 'anonymousId:a1' — one profile, keyed by its first identity
 */
export function resolveIdentities(links: readonly IdentityLink[], options: IdentityOptions = {}): Partition {
  checkOptions(options);
  const state: State = { owner: new Map(), refusals: [], options };
  for (const link of canonicalLinks(links)) applyLink(state, link);
  const nodes = [...new Set(state.owner.values())].sort((a, b) => compareStrings(a.key, b.key));
  const groups = nodes.map(toGroup);
  const groupOf = new Map<string, string>();
  for (const key of [...state.owner.keys()].sort(compareStrings)) groupOf.set(key, state.owner.get(key)!.key);
  return { groups, groupOf, refusals: state.refusals };
}
