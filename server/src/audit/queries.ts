import type { Sql } from '../db/index.ts';

/** One audit row as written; `before`/`after` are already redacted. */
export interface AuditEntry {
  actorKind: string;
  actorId: string;
  actorRole: string;
  actorUserId: string | null;
  action: string;
  resourceType: string;
  resourceId: string | null;
  method: string;
  path: string;
  status: number;
  before: unknown;
  after: unknown;
  requestId: string | null;
  ip: string | null;
}

/** One audit row as read back. */
export interface AuditRow extends AuditEntry {
  id: string;
  at: Date;
}

const jsonOrNull = (sql: Sql, v: unknown) => (v === null || v === undefined ? null : sql.json(v as never));

/**
 * Appends an audit row.
 *
 * @example
 * await insertAudit(sql, { actorKind: 'api-key', actorId: 'k1', actorRole: 'admin', action: 'source.create', ... });
 */
export async function insertAudit(sql: Sql, e: AuditEntry): Promise<void> {
  await sql`
    INSERT INTO audit_log (
      actor_kind, actor_id, actor_role, actor_user_id, action, resource_type, resource_id,
      method, path, status, before, after, request_id, ip
    )
    VALUES (
      ${e.actorKind}, ${e.actorId}, ${e.actorRole}, ${e.actorUserId}, ${e.action}, ${e.resourceType}, ${e.resourceId},
      ${e.method}, ${e.path}, ${e.status}, ${jsonOrNull(sql, e.before)}, ${jsonOrNull(sql, e.after)},
      ${e.requestId}, ${e.ip}
    )`;
}

/** Filters of `GET /api/audit`; `before` is the `next` of the previous page. */
export interface AuditFilter {
  actor?: string;
  resourceType?: string;
  resourceId?: string;
  action?: string;
  before?: string;
  limit: number;
}

/**
 * A page of the audit log, newest first (keyset-paged on id).
 *
 * @example
 * const rows = await listAudit(sql, { resourceType: 'audience', resourceId: 'vip', limit: 50 });
 */
export async function listAudit(sql: Sql, f: AuditFilter): Promise<AuditRow[]> {
  const where = [
    f.actor !== undefined && sql`(actor_id = ${f.actor} OR actor_user_id = ${f.actor})`,
    f.resourceType !== undefined && sql`resource_type = ${f.resourceType}`,
    f.resourceId !== undefined && sql`resource_id = ${f.resourceId}`,
    f.action !== undefined && sql`action = ${f.action}`,
    f.before !== undefined && sql`id < ${f.before}`,
  ].filter((w) => w !== false);
  const clause = where.reduce((acc, w, i) => (i === 0 ? sql`WHERE ${w}` : sql`${acc} AND ${w}`), sql``);
  // ORDER BY names the table's id: the output column id is its text form (bigint ids exceed JSON numbers).
  return sql<AuditRow[]>`
    SELECT id::text AS id, at, actor_kind AS "actorKind", actor_id AS "actorId", actor_role AS "actorRole",
      actor_user_id AS "actorUserId", action, resource_type AS "resourceType", resource_id AS "resourceId",
      method, path, status, before, after, request_id AS "requestId", ip
    FROM audit_log
    ${clause}
    ORDER BY audit_log.id DESC
    LIMIT ${f.limit}`;
}
