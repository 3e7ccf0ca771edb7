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
  'api',
]);
const NODES: ReadonlySet<string> = new Set(['wait', 'wait_until', 'wait_for_event', 'branch', 'split', 'send', 'exit']);

/**
 * The parts of a flow this server cannot run yet, as validation issues.
 *
 * @example
 * runnerIssues(def); // [{ node: 'coupon', path: 'nodes.2.type', message: '…' }]
 */
export function runnerIssues(def: FlowDefinition): FlowIssue[] {
  const issues: FlowIssue[] = [];
  if (!TRIGGERS.has(def.trigger.type))
    issues.push({
      path: 'trigger.type',
      message: `${def.trigger.type} triggers are not run by this server yet (it runs ${[...TRIGGERS].join(', ')})`,
    });
  def.nodes.forEach((n, i) => {
    if (!NODES.has(n.type))
      issues.push({
        node: n.id,
        path: `nodes.${i}.type`,
        message: `${n.type} nodes are not run by this server yet (it runs ${[...NODES].join(', ')})`,
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
