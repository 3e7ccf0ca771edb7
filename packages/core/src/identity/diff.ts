import { compareSurvivors, type Group, type Partition } from './resolve.ts';
import { compareStrings, identityKey } from './types.ts';

/** Where one group of the new partition comes from. */
export interface GroupOrigin {
  /** The group's key in the new partition. */
  readonly key: string;
  /** The previous label (profile id) this group carries on, or null: a new profile. */
  readonly continues: string | null;
  /** Every previous label that held one of the group's identities, sorted. */
  readonly sources: readonly string[];
}

/** Several previous labels now form one group: `merged` are absorbed into `survivor`. */
export interface MergeChange {
  readonly key: string;
  readonly survivor: string | null;
  readonly merged: readonly string[];
}

/** One previous label's identities now sit in several groups; `keptBy` carries the label on. */
export interface SplitChange {
  readonly from: string;
  readonly into: readonly string[];
  readonly keptBy: string | null;
}

/** The result of {@link diffPartitions}. */
export interface PartitionDiff {
  readonly groups: readonly GroupOrigin[];
  readonly merges: readonly MergeChange[];
  readonly splits: readonly SplitChange[];
}

/** Each previous label is carried on by at most one new group, chosen best survivor first. */
function assignLabels(previous: ReadonlyMap<string, string>, ranked: readonly Group[]): Map<string, string> {
  const keptBy = new Map<string, string>();
  const claim = (group: Group, label: string | undefined) => {
    if (label === undefined || keptBy.has(label)) return false;
    keptBy.set(label, group.key);
    return true;
  };
  // A group first claims the label of its own key identity: the key is inherited from the
  // survivor, so that label is the profile the replay says survived.
  const unlabelled = ranked.filter((g) => !claim(g, previous.get(g.key)));
  for (const group of unlabelled) {
    for (const id of group.identities) if (claim(group, previous.get(identityKey(id)))) break;
  }
  return keptBy;
}

function sourcesOf(previous: ReadonlyMap<string, string>, group: Group): string[] {
  const labels = new Set<string>();
  for (const id of group.identities) {
    const label = previous.get(identityKey(id));
    if (label !== undefined) labels.add(label);
  }
  return [...labels].sort(compareStrings);
}

/**
 * Compares a previous assignment (identityKey → any label, e.g. a profile id) with a new partition:
 * which previous label each new group carries on (`continues`, null = create a profile), which labels
 * merge, and which split (a late, earlier link re-bound an identity: an automatic unmerge). A label
 * is carried on by one group only; claims go in survivor order ({@link compareSurvivors}): the label
 * of the group's key identity first, then the label of its first identity (canonical order) that is
 * free. Identities present only in `previous` are ignored.
 *
 * @example
 * const before = new Map([['anonymousId:a1', 'p1'], ['userId:u1', 'p2']]);
 * const ids = [{ type: 'userId', value: 'u1' }, { type: 'anonymousId', value: 'a1' }] as const;
 * diffPartitions(before, resolveIdentities([{ eventId: 'e1', ts: 1, ids }])).merges;
 * // [{ key: 'userId:u1', survivor: 'p2', merged: ['p1'] }]
 */
export function diffPartitions(previous: ReadonlyMap<string, string>, next: Partition): PartitionDiff {
  const ranked = [...next.groups].sort(compareSurvivors);
  const keptBy = assignLabels(previous, ranked);
  const continues = new Map([...keptBy].map(([label, key]) => [key, label]));
  const groups: GroupOrigin[] = [];
  const merges: MergeChange[] = [];
  const targets = new Map<string, string[]>();
  for (const group of next.groups) {
    const sources = sourcesOf(previous, group);
    const survivor = continues.get(group.key) ?? null;
    groups.push({ key: group.key, continues: survivor, sources });
    if (sources.length > 1) merges.push({ key: group.key, survivor, merged: sources.filter((s) => s !== survivor) });
    for (const label of sources) targets.set(label, [...(targets.get(label) ?? []), group.key]);
  }
  const splits: SplitChange[] = [...targets]
    .filter(([, into]) => into.length > 1)
    .map(([from, into]) => ({ from, into, keptBy: keptBy.get(from) ?? null }))
    .sort((a, b) => compareStrings(a.from, b.from));
  return { groups, merges, splits };
}
