import type { Tx } from '../db/index.ts';

// The employee directory and the links between people (profiles) and employees. The admin API
// (api/employees.ts) writes them; stage 4 reads them when a flow assigns an owner or notifies.

/** Which of a person's data an employee sees in a notification. */
export type EmployeeRole = 'full' | 'masked';

/** An employee as stored. */
export interface EmployeeRow {
  id: string;
  name: string;
  email: string | null;
  chatHandle: string | null;
  supervisorId: string | null;
  role: EmployeeRole;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** The fields of an employee an admin sets. */
export type EmployeeFields = Pick<EmployeeRow, 'name' | 'email' | 'chatHandle' | 'supervisorId' | 'role' | 'active'>;

const COLUMNS = (sql: Tx) => sql`
  id, name, email, chat_handle AS "chatHandle", supervisor_id AS "supervisorId", role, active,
  created_at AS "createdAt", updated_at AS "updatedAt"`;

/**
 * Every employee, by id.
 *
 * @example
 * const all = await listEmployees(sql);
 */
export function listEmployees(sql: Tx): Promise<EmployeeRow[]> {
  return sql<EmployeeRow[]>`SELECT ${COLUMNS(sql)} FROM employees ORDER BY id`;
}

/**
 * Employees by id (the ones that exist).
 *
 * @example
 * const byId = await employeesByIds(tx, ['emp_ann', 'emp_bob']);
 */
export async function employeesByIds(sql: Tx, ids: readonly string[]): Promise<Map<string, EmployeeRow>> {
  if (!ids.length) return new Map();
  const rows = await sql<EmployeeRow[]>`SELECT ${COLUMNS(sql)} FROM employees WHERE id = ANY(${[...ids]}::text[])`;
  return new Map(rows.map((r) => [r.id, r]));
}

/**
 * One employee, or undefined.
 *
 * @example
 * const ann = await getEmployee(sql, 'emp_ann');
 */
export async function getEmployee(sql: Tx, id: string): Promise<EmployeeRow | undefined> {
  return (await employeesByIds(sql, [id])).get(id);
}

/**
 * Inserts an employee; false when the id is taken.
 *
 * @example
 * await insertEmployee(sql, 'emp_ann', { name: 'Ann', email: 'ann@corp.test', ... });
 */
export async function insertEmployee(sql: Tx, id: string, f: EmployeeFields): Promise<boolean> {
  const rows = await sql`
    INSERT INTO employees (id, name, email, chat_handle, supervisor_id, role, active)
    VALUES (${id}, ${f.name}, ${f.email}, ${f.chatHandle}, ${f.supervisorId}, ${f.role}, ${f.active})
    ON CONFLICT (id) DO NOTHING
    RETURNING id`;
  return rows.length > 0;
}

/**
 * Replaces an employee's fields.
 *
 * @example
 * await updateEmployee(tx, 'emp_ann', { ...ann, supervisorId: 'emp_carl' });
 */
export async function updateEmployee(sql: Tx, id: string, f: EmployeeFields): Promise<void> {
  await sql`
    UPDATE employees SET name = ${f.name}, email = ${f.email}, chat_handle = ${f.chatHandle},
      supervisor_id = ${f.supervisorId}, role = ${f.role}, active = ${f.active}, updated_at = now()
    WHERE id = ${id}`;
}

/**
 * Deletes an employee (their links go with them).
 *
 * @example
 * await deleteEmployee(sql, 'emp_ann');
 */
export async function deleteEmployee(sql: Tx, id: string): Promise<void> {
  await sql`DELETE FROM employees WHERE id = ${id}`;
}

/**
 * The ids of the employees whose supervisor is `id`.
 *
 * @example
 * const reports = await reportsOf(sql, 'emp_carl');
 */
export async function reportsOf(sql: Tx, id: string): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`SELECT id FROM employees WHERE supervisor_id = ${id} ORDER BY id`;
  return rows.map((r) => r.id);
}

/**
 * The supervisor chain above an employee, nearest first (the employee not included), at most `levels`
 * long. Stops at a repeated id, so a cycle (which the API refuses) cannot loop.
 *
 * @example
 * await supervisorChain(sql, 'emp_ann', 10); // ['emp_carl', 'emp_dora']
 */
export async function supervisorChain(sql: Tx, id: string, levels: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    WITH RECURSIVE up (id, depth, seen) AS (
      SELECT supervisor_id, 1, ARRAY[id] FROM employees WHERE id = ${id} AND supervisor_id IS NOT NULL
      UNION ALL
      SELECT e.supervisor_id, up.depth + 1, up.seen || up.id
      FROM up JOIN employees e ON e.id = up.id
      WHERE e.supervisor_id IS NOT NULL AND up.depth < ${levels} AND NOT e.supervisor_id = ANY(up.seen || up.id)
    )
    SELECT id FROM up ORDER BY depth`;
  return rows.map((r) => r.id);
}

/** One link of a person to an employee. */
export interface LinkRow {
  employeeId: string;
  position: number;
  linkedAt: Date;
}

/**
 * The employees linked to people, in order per person (the first is the lead owner).
 *
 * @example
 * const links = await linksOf(tx, [profileId]); // Map { profileId => [{ employeeId: 'emp_ann', ... }] }
 */
export async function linksOf(sql: Tx, profileIds: readonly string[]): Promise<Map<string, LinkRow[]>> {
  const out = new Map<string, LinkRow[]>();
  if (!profileIds.length) return out;
  const rows = await sql<(LinkRow & { profileId: string })[]>`
    SELECT profile_id::text AS "profileId", employee_id AS "employeeId", position, linked_at AS "linkedAt"
    FROM profile_employees
    WHERE profile_id = ANY(${[...profileIds]}::uuid[])
    ORDER BY profile_id, position, linked_at, employee_id`;
  for (const { profileId, ...link } of rows) out.set(profileId, [...(out.get(profileId) ?? []), link]);
  return out;
}

/**
 * Links an employee to a person: last (`first` false) or as the lead owner (`first` true). An existing
 * link moves to the front only when `first`; otherwise it stays where it is. Returns whether a link was
 * added.
 *
 * @example
 * await linkEmployee(tx, profileId, 'emp_ann', { first: true }); // Ann is now the lead owner
 */
export async function linkEmployee(
  sql: Tx,
  profileId: string,
  employeeId: string,
  options: { first: boolean },
): Promise<boolean> {
  // One statement per person at a time: concurrent links of one person could take the same position
  // (harmless for order, which falls back to linked_at), so the person's rows are locked first.
  await sql`SELECT 1 FROM profile_employees WHERE profile_id = ${profileId} FOR UPDATE`;
  const rows = await sql<{ inserted: boolean }[]>`
    WITH ends AS (
      SELECT coalesce(min(position), 0) AS low, coalesce(max(position), -1) AS high
      FROM profile_employees WHERE profile_id = ${profileId}
    )
    INSERT INTO profile_employees (profile_id, employee_id, position)
    SELECT ${profileId}, ${employeeId}, CASE WHEN ${options.first} THEN low - 1 ELSE high + 1 END FROM ends
    ON CONFLICT (profile_id, employee_id) DO UPDATE
      SET position = CASE WHEN ${options.first} THEN EXCLUDED.position ELSE profile_employees.position END
    RETURNING (xmax = 0) AS inserted`;
  return rows[0]?.inserted ?? false;
}

/**
 * Removes a link; false when there was none.
 *
 * @example
 * await unlinkEmployee(sql, profileId, 'emp_ann');
 */
export async function unlinkEmployee(sql: Tx, profileId: string, employeeId: string): Promise<boolean> {
  const rows = await sql`
    DELETE FROM profile_employees WHERE profile_id = ${profileId} AND employee_id = ${employeeId} RETURNING 1`;
  return rows.length > 0;
}

/**
 * Puts a person's links in the given order (every linked employee, each once).
 *
 * @example
 * await reorderLinks(tx, profileId, ['emp_bob', 'emp_ann']); // Bob leads
 */
export async function reorderLinks(sql: Tx, profileId: string, order: readonly string[]): Promise<void> {
  await sql`
    UPDATE profile_employees pe SET position = x.i - 1
    FROM unnest(${[...order]}::text[]) WITH ORDINALITY AS x (employee_id, i)
    WHERE pe.profile_id = ${profileId} AND pe.employee_id = x.employee_id`;
}
