import { type FlowDefinition, type FlowIssue, factsNeeded } from '@cairn/core';

// What the engine can describe but this server's runner does not run yet: refused when a flow is
// published (with the node and the reason), never accepted and then silently skipped.

const TRIGGERS: ReadonlySet<string> = new Set([
  'event',
  'audience_entered',
  'audience_exited',
  'tag_added',
  'tag_removed',
  'date_trait',
  'schedule',
  'calendar',
  'trait_changed',
  'api',
]);
const NODES: ReadonlySet<string> = new Set([
  'wait',
  'wait_until',
  'wait_for_event',
  'branch',
  'split',
  'experiment',
  'send',
  'update_profile',
  'webhook',
  'action',
  'assign_owner',
  'notify_employees',
  'issue_coupon',
  'points',
  'exit',
]);

// A sensitive trait's change event carries blind indexes, not values (identify/trait-changes.ts): only
// these comparisons of `to` mean anything on them.
const BLIND_COMPARISONS: ReadonlySet<string> = new Set(['exists', 'is_empty']);

/**
 * The parts of a flow this server cannot run yet, as validation issues. With `staticTags` (the tags
 * without a rule), an `update_profile` that adds or removes any other tag is refused too: a dynamic
 * tag's rule decides who carries it, and a flow does not create tags. With `sensitive`, a plain
 * `trait_changed` trigger comparing a sensitive trait's new value (other than `exists` / `is_empty`) is
 * refused: its change events never hold the value.
 *
 * @example
 * runnerIssues(def); // [{ node: 'coupon', path: 'nodes.2.type', message: '…' }]
 */
export function runnerIssues(
  def: FlowDefinition,
  known: { staticTags?: readonly string[]; sensitive?: (key: string) => boolean } = {},
): FlowIssue[] {
  const issues: FlowIssue[] = [];
  if (!TRIGGERS.has(def.trigger.type))
    issues.push({
      path: 'trigger.type',
      message: `${def.trigger.type} triggers are not run by this server yet (it runs ${[...TRIGGERS].join(', ')})`,
    });
  const t = def.trigger;
  if (
    t.type === 'trait_changed' &&
    !t.computed &&
    t.to &&
    known.sensitive?.(t.trait) &&
    !BLIND_COMPARISONS.has(t.to.cmp)
  )
    issues.push({
      path: 'trigger.to',
      message: `${t.trait} is a sensitive trait: its changes are recorded without values, so "to" can only be exists or is_empty`,
    });
  def.nodes.forEach((n, i) => {
    if (!NODES.has(n.type))
      issues.push({
        node: n.id,
        path: `nodes.${i}.type`,
        message: `${n.type} nodes are not run by this server yet (it runs ${[...NODES].join(', ')})`,
      });
    if (n.type === 'update_profile' && known.staticTags)
      for (const field of ['addTags', 'removeTags'] as const)
        for (const tag of n[field] ?? [])
          if (!known.staticTags.includes(tag))
            issues.push({
              node: n.id,
              path: `nodes.${i}.${field}`,
              message: `tag "${tag}" is not a static tag of this server (create it with POST /api/tags, without a rule)`,
            });
  });
  const needed = factsNeeded(def);
  if (needed.subscriptions || needed.accounts)
    issues.push({
      path: 'entry',
      message: `rules on ${needed.subscriptions ? 'subscriptions' : 'account traits'} are not read by this server's runner yet`,
    });
  return issues;
}
