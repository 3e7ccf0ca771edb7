import { employeeReferences, type FlowDefinition, type FlowIssue } from '@cairn/core';
import type { Tx } from '../db/index.ts';
import { employeesByIds } from './queries.ts';

/**
 * What is wrong with the employees a flow names (`assign_owner`'s fixed, round robin and rule
 * employees): each one unknown to the directory or deactivated, with its node and path. A flow is
 * checked when saved, submitted and published; an employee deactivated later is passed over at run time
 * (logged), as before.
 *
 * @example
 * const issues = await flowEmployeeIssues(sql, definition);
 * // [{ node: 'owner', path: 'nodes.0.employees.1', message: 'employee "emp_gone" is deactivated' }]
 */
export async function flowEmployeeIssues(sql: Tx, def: FlowDefinition): Promise<FlowIssue[]> {
  const refs = employeeReferences(def);
  if (!refs.length) return [];
  const known = await employeesByIds(sql, [...new Set(refs.map((r) => r.employee))]);
  return refs.flatMap((r) => {
    const e = known.get(r.employee);
    if (e?.active) return [];
    const message = e ? `employee "${r.employee}" is deactivated` : `unknown employee "${r.employee}"`;
    return [{ node: r.node, path: r.path, message }];
  });
}
