import { roleOf } from '../auth/api-keys.ts';
import { type Principal, ROLES, type Role } from '../auth/keys.ts';
import { apiKeyRecord, personRecord } from '../auth/queries.ts';
import type { Sql } from '../db/index.ts';
import { getEmployee } from '../employees/queries.ts';
import { STORED_VIEW } from '../pii/view.ts';
import { getCalendar, getCouponPool, getFlow } from '../pipeline/automate/index.ts';
import { computedTraitDefinition, getAudience, getClustering, tagDefinition } from '../pipeline/compute/index.ts';
import { getDestination } from '../pipeline/deliver/index.ts';
import { getTraitRule, profileView } from '../pipeline/identify/index.ts';
import { getAlertRule, getCampaign, getKpi, getReport } from '../pipeline/measure/index.ts';
import { getSource } from '../sources/queries.ts';

/** Reads a resource's current state, as JSON, by id; undefined when there is none. */
export type Loader = (sql: Sql, id: string) => Promise<unknown>;

/** How one admin write is recorded. */
export interface AuditedRoute {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Below /api, in Hono's syntax (`/sources/:id`). */
  path: string;
  /** `<resource>.<verb>`; null for a read sent as POST (previews), which is not recorded. */
  action: string | null;
  resourceType: string;
  /** The route parameter naming the resource (default id, else key); `response` for creates. */
  idFrom?: string;
  /** State before and after the write; without it `after` is {@link AuditedRoute.summary}, else null. */
  load?: Loader;
  /** What to keep of the response (and request body) when no loader applies: never identities. */
  summary?: (response: Record<string, unknown>, request: Record<string, unknown>) => unknown;
  /** The request path as the log keeps it, for a path that names an identity (an email is PII). */
  maskPath?: (path: string) => string;
  /** For a route taken without credentials (sign-up): the actor, and the resource id, named by the answer. */
  self?: (response: Record<string, unknown>) => { principal: Principal; id: string } | undefined;
}

/** Field names whose values never reach the audit log, wherever they appear. */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([
  'writeKey',
  'previousWriteKey',
  'initialPassword',
  'password',
  'key_hash',
]);
const REDACTED = '[redacted]';

/**
 * A copy of a JSON value with secret fields replaced (destination secrets are already masked by the
 * destination view the loaders use).
 *
 * @example
 * redact({ writeKey: 'wk_1', name: 'Shop' }); // { writeKey: '[redacted]', name: 'Shop' }
 */
export function redact(value: unknown, extra: ReadonlySet<string> = new Set()): unknown {
  if (Array.isArray(value)) return value.map((v) => redact(v, extra));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_FIELDS.has(k) || extra.has(k) ? (v == null ? v : REDACTED) : redact(v, extra);
  }
  return out;
}

const plain = (v: unknown) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The loaders: each reads what the admin API shows of a resource, minus volatile counters. */
export function loaders(maskDestination: (d: NonNullable<Awaited<ReturnType<typeof getDestination>>>) => unknown) {
  return {
    source: async (sql, id) => plain(await getSource(sql, id)),
    destination: async (sql, id) => {
      const d = await getDestination(sql, id);
      if (!d) return undefined;
      // The circuit state changes with every delivery: not part of what an admin changed.
      const { circuit: _circuit, ...rest } = maskDestination(d) as Record<string, unknown>;
      return rest;
    },
    audience: async (sql, key) => {
      const a = await getAudience(sql, key);
      if (!a) return undefined;
      const { members: _m, computedAt: _c, ...rest } = a;
      return plain(rest);
    },
    tag: tagDefinition,
    computedTrait: computedTraitDefinition,
    flow: async (sql, id) => plain(await getFlow(sql, id)),
    calendar: async (sql, key) => plain(await getCalendar(sql, key)),
    couponPool: async (sql, key) => plain(await getCouponPool(sql, key)),
    employee: async (sql, id) => plain(await getEmployee(sql, id)),
    report: async (sql, id) => plain(await getReport(sql, id)),
    campaign: async (sql, id) => plain(await getCampaign(sql, id)),
    kpi: async (sql, id) => plain(await getKpi(sql, id)),
    clustering: async (sql, id) => plain(await getClustering(sql, id)),
    traitRule: async (sql, key) => plain(await getTraitRule(sql, key)),
    // The rule, not its incident state (a check changes it, no admin did).
    alertRule: async (sql, id) => {
      const r = await getAlertRule(sql, id);
      if (!r) return undefined;
      const { firing: _f, incident: _i, lastValue: _v, checkedAt: _c, ...rest } = r;
      return plain(rest);
    },
    user: personRecord,
    // Never the key column (a hash, but still the credential's verifier); metadata is stored as text.
    apiKey: async (sql, id) => {
      const k = await apiKeyRecord(sql, id);
      if (!k) return undefined;
      const { metadata, ...rest } = k;
      return plain({ ...rest, role: roleOf(metadata) ?? null });
    },
    // Consent only: the profile view also carries identities and traits (PII).
    consent: async (sql, id) => (UUID.test(id) ? plain((await profileView(sql, id, STORED_VIEW))?.consent) : undefined),
  } satisfies Record<string, Loader>;
}

/**
 * The per-resource table: every write route of the admin API, what it is called in the log and how its
 * before/after is read. The audit test checks it against the OpenAPI description, so a new write route
 * without a row fails CI (and is still recorded, generically, until it gets one).
 *
 * @example
 * const routes = auditedRoutes(loaders(destinationView));
 */
export function auditedRoutes(l: ReturnType<typeof loaders>): AuditedRoute[] {
  const crud = (base: string, type: string, load: Loader, param = 'id'): AuditedRoute[] => [
    { method: 'POST', path: base, action: `${type}.create`, resourceType: type, idFrom: 'response', load },
    { method: 'PATCH', path: `${base}/:${param}`, action: `${type}.update`, resourceType: type, load },
    { method: 'DELETE', path: `${base}/:${param}`, action: `${type}.delete`, resourceType: type, load },
  ];
  // For answers that hold only ids, counts and statuses (erasure, unmerge, replays): kept as answered.
  const asAnswered = (r: Record<string, unknown>) => r;
  // A person's links after the write: the employee ids in order (the answer also holds the employees).
  const linkedIds = (r: Record<string, unknown>) => ({
    employees: ((r.data as { employeeId: string }[] | undefined) ?? []).map((l) => l.employeeId),
  });
  return [
    ...crud('/sources', 'source', l.source).filter((r) => r.method !== 'DELETE'),
    {
      method: 'POST',
      path: '/sources/:id/rotate-key',
      action: 'source.rotate_key',
      resourceType: 'source',
      load: l.source,
    },
    { method: 'POST', path: '/sources/:id/disable', action: 'source.disable', resourceType: 'source', load: l.source },
    { method: 'POST', path: '/sources/:id/enable', action: 'source.enable', resourceType: 'source', load: l.source },

    ...crud('/destinations', 'destination', l.destination),
    {
      method: 'POST',
      path: '/destinations/:id/disable',
      action: 'destination.disable',
      resourceType: 'destination',
      load: l.destination,
    },
    {
      method: 'POST',
      path: '/destinations/:id/enable',
      action: 'destination.enable',
      resourceType: 'destination',
      load: l.destination,
    },
    {
      method: 'POST',
      path: '/destinations/:id/test',
      action: 'destination.test',
      resourceType: 'destination',
      summary: (r) => ({ outcome: (r.outcome as { status?: string })?.status }),
    },
    {
      method: 'POST',
      path: '/destinations/:id/replay',
      action: 'destination.replay',
      resourceType: 'destination',
      summary: asAnswered,
    },

    ...crud('/audiences', 'audience', l.audience, 'key'),
    { method: 'POST', path: '/audiences/preview', action: null, resourceType: 'audience' },
    // Which rollups are kept changes every later tile's source and the pipeline's work: recorded (before the
    // catch-all below, which the first matching row wins over).
    {
      method: 'POST',
      path: '/analytics/rollups/people',
      action: 'analytics_rollup.keep_people',
      resourceType: 'analytics_rollup',
      summary: (r, req) => ({ request: req, registry: r }),
    },
    {
      method: 'DELETE',
      path: '/analytics/rollups/people',
      action: 'analytics_rollup.drop_people',
      resourceType: 'analytics_rollup',
      summary: (r) => ({ registry: r }),
    },
    {
      method: 'PUT',
      path: '/analytics/rollups/properties',
      action: 'analytics_rollup.put_property',
      resourceType: 'analytics_rollup',
      summary: (r, req) => ({ request: req, rolledUp: r }),
    },
    {
      method: 'DELETE',
      path: '/analytics/rollups/properties',
      action: 'analytics_rollup.delete_property',
      resourceType: 'analytics_rollup',
    },
    {
      method: 'PUT',
      path: '/analytics/rollups/traits',
      action: 'analytics_rollup.keep_trait',
      resourceType: 'analytics_rollup',
      summary: (r, req) => ({ request: req, kept: r }),
    },
    {
      method: 'DELETE',
      path: '/analytics/rollups/traits',
      action: 'analytics_rollup.drop_trait',
      resourceType: 'analytics_rollup',
    },
    // Analytics queries are reads sent as POST (their bodies hold steps, filters, breakdowns).
    { method: 'POST', path: '/analytics/*', action: null, resourceType: 'analytics' },
    {
      method: 'POST',
      path: '/audiences/:key/recompute',
      action: 'audience.recompute',
      resourceType: 'audience',
      summary: asAnswered,
    },

    ...crud('/tags', 'tag', l.tag, 'key'),
    // A funnel step's people tagged at once: the query and how many, never who.
    {
      method: 'POST',
      path: '/tags/:tag/from-funnel',
      action: 'tag.from_funnel',
      resourceType: 'tag',
      idFrom: 'tag',
      summary: (r, q) => ({ step: q.step, status: q.status, range: q.range, people: r.people, added: r.added }),
    },
    ...crud('/computed-traits', 'computed_trait', l.computedTrait, 'key'),
    {
      method: 'POST',
      path: '/computed-traits/presets/:preset',
      action: 'computed_trait.create',
      resourceType: 'computed_trait',
      idFrom: 'response',
      load: l.computedTrait,
    },

    ...crud('/flows', 'flow', l.flow).filter((r) => r.method !== 'DELETE'),
    { method: 'POST', path: '/flows/:id/publish', action: 'flow.publish', resourceType: 'flow', load: l.flow },
    { method: 'POST', path: '/flows/:id/pause', action: 'flow.pause', resourceType: 'flow', load: l.flow },
    { method: 'POST', path: '/flows/:id/resume', action: 'flow.resume', resourceType: 'flow', load: l.flow },
    // Review steps: `after` is the flow with its review and last transition (who, when, the note saying why).
    ...(['submit', 'approve', 'reject', 'archive'] as const).map((step) => ({
      method: 'POST' as const,
      path: `/flows/:id/${step}`,
      action: `flow.${step}`,
      resourceType: 'flow',
      load: l.flow,
    })),
    { method: 'POST', path: '/flows/:id/simulate', action: null, resourceType: 'flow' },
    // The answer holds the run's id and whether (and why) the person entered: no personal data.
    { method: 'POST', path: '/flows/:id/enter', action: 'flow.enter', resourceType: 'flow', summary: asAnswered },
    // Caps and quiet hours for every flow, replaced whole: `after` is the settings as stored (no personal data).
    {
      method: 'PUT',
      path: '/flow-governance',
      action: 'flow_governance.update',
      resourceType: 'flow_governance',
      summary: (r) => ({ caps: r.caps, quietHours: r.quietHours }),
    },
    // Replaced whole (PUT), not patched.
    ...crud('/calendars', 'calendar', l.calendar, 'key').map((r) =>
      r.method === 'PATCH' ? { ...r, method: 'PUT' as const } : r,
    ),
    // Who moved people between versions, why, and how many moved where (a dry run is recorded too).
    {
      method: 'POST',
      path: '/flows/:id/migrate',
      action: 'flow.migrate',
      resourceType: 'flow',
      summary: (r, q) => ({ ...r, map: q.map, reason: q.reason ?? null }),
    },

    ...crud('/employees', 'employee', l.employee),
    // Scheduled reports; a preview sent now is recorded with whether it went.
    ...crud('/reports', 'report', l.report),
    {
      method: 'POST',
      path: '/reports/:id/send-now',
      action: 'report.send_now',
      resourceType: 'report',
      summary: (r) => ({ sent: r.sent, period: (r.period as { range?: unknown } | undefined)?.range }),
    },
    // Campaigns; a cost entry is recorded with its amount, date and note.
    ...crud('/campaigns', 'campaign', l.campaign),
    {
      method: 'POST',
      path: '/campaigns/:id/costs',
      action: 'campaign.cost_add',
      resourceType: 'campaign',
      summary: (r) => ({ costId: r.id, amount: r.amount, at: r.at, note: r.note }),
    },
    {
      method: 'DELETE',
      path: '/campaigns/:id/costs/:costId',
      action: 'campaign.cost_delete',
      resourceType: 'campaign',
      load: l.campaign,
    },
    ...crud('/kpis', 'kpi', l.kpi),
    // Imports: counts only (the rows are profiles' PII); the upload of the file, with where it stopped.
    { method: 'POST', path: '/imports', action: 'import.create', resourceType: 'import', summary: importSummary },
    {
      method: 'PUT',
      path: '/imports/:id/data',
      action: 'import.upload',
      resourceType: 'import',
      summary: importSummary,
    },
    // A CRM upsert names the person by an identity in its path: the log keeps the type, never the value.
    {
      method: 'PUT',
      path: '/profiles/by/:identityType/:value',
      action: 'profile.upsert',
      resourceType: 'profile',
      idFrom: 'response',
      maskPath: (path) => path.replace(/^(\/api\/profiles\/by\/[^/]+\/).*$/, '$1[identity]'),
      summary: (r) => ({ created: r.created, changed: r.changed }),
    },
    ...crud('/clusterings', 'clustering', l.clustering),
    // Data-quality rules per trait: created or replaced by PUT, keyed by the trait.
    {
      method: 'PUT',
      path: '/data-quality/rules/:key',
      action: 'trait_rule.put',
      resourceType: 'trait_rule',
      idFrom: 'key',
      load: l.traitRule,
    },
    // A backfill's answer: its settings and counts (the sample's values stay out of the log).
    {
      method: 'POST',
      path: '/data-quality/backfills',
      action: 'trait_backfill.start',
      resourceType: 'trait_backfill',
      idFrom: 'response',
      summary: (r) => ({ keys: r.keys, dryRun: r.dryRun, triggerFlows: r.triggerFlows }),
    },
    // Cancel and resume: where the backfill stood (counts, never values).
    ...(['cancel', 'resume'] as const).map((verb) => ({
      method: 'POST' as const,
      path: `/data-quality/backfills/:id/${verb}`,
      action: `trait_backfill.${verb}`,
      resourceType: 'trait_backfill',
      idFrom: 'id' as const,
      summary: (r: Record<string, unknown>) => ({ status: r.status, rowsDone: r.rowsDone, total: r.total }),
    })),
    {
      method: 'DELETE',
      path: '/data-quality/rules/:key',
      action: 'trait_rule.delete',
      resourceType: 'trait_rule',
      idFrom: 'key',
      load: l.traitRule,
    },
    {
      method: 'POST',
      path: '/clusterings/:id/run',
      action: 'clustering.run',
      resourceType: 'clustering',
      summary: (r) => ({ runId: r.id, status: r.status }),
    },
    ...crud('/alerts', 'alert_rule', l.alertRule),
    // A check run by hand: what it did (counts), never values.
    {
      method: 'POST',
      path: '/alerts/check',
      action: 'alert_rule.check',
      resourceType: 'alert_rule',
      summary: (r) => r,
    },
    // Coupon pools; an import is recorded with its counts (never the codes), an adjustment with its entry.
    ...crud('/coupon-pools', 'coupon_pool', l.couponPool, 'key'),
    {
      method: 'POST',
      path: '/coupon-pools/:key/codes',
      action: 'coupon_pool.import',
      resourceType: 'coupon_pool',
      summary: (r) => ({ imported: r.imported, duplicate: r.duplicate }),
    },
    {
      method: 'POST',
      path: '/profiles/:id/points',
      action: 'profile.points_adjust',
      resourceType: 'profile',
      summary: (r, q) => ({
        delta: q.delta,
        reason: q.reason,
        expiresInDays: q.expiresInDays ?? null,
        key: q.key ?? null,
        balance: r.balance,
      }),
    },
    {
      method: 'POST',
      path: '/profiles/:id/employees',
      action: 'profile.employee_link',
      resourceType: 'profile',
      summary: linkedIds,
    },
    {
      method: 'PUT',
      path: '/profiles/:id/employees/order',
      action: 'profile.employee_order',
      resourceType: 'profile',
      summary: linkedIds,
    },
    {
      method: 'DELETE',
      path: '/profiles/:id/employees/:employeeId',
      action: 'profile.employee_unlink',
      resourceType: 'profile',
      summary: linkedIds,
    },

    {
      method: 'PUT',
      path: '/profiles/:id/consent',
      action: 'profile.consent',
      resourceType: 'profile',
      load: l.consent,
    },
    {
      method: 'PUT',
      path: '/profiles/:id/subscriptions',
      action: 'profile.subscriptions',
      resourceType: 'profile',
      // The contact points are identities: only how many changed.
      summary: (r, q) => ({
        channel: q.channel,
        topic: q.topic ?? '',
        subscribed: q.subscribed,
        contacts: (r.contacts as unknown[] | undefined)?.length ?? 0,
      }),
    },
    {
      method: 'POST',
      path: '/profiles/:id/unmerge',
      action: 'profile.unmerge',
      resourceType: 'profile',
      summary: asAnswered,
    },
    {
      method: 'POST',
      path: '/profiles/:id/tags',
      action: 'profile.tag_add',
      resourceType: 'profile',
      summary: (r, q) => ({ tag: q.tag, changed: r.changed }),
    },
    {
      method: 'DELETE',
      path: '/profiles/:id/tags/:tag',
      action: 'profile.tag_remove',
      resourceType: 'profile',
      summary: (r) => r,
    },
    // Duplicates: the merge answer holds ids only; a dismissal keeps its status, never the pair's PII.
    {
      method: 'PUT',
      path: '/duplicates/schedule',
      action: 'duplicate.schedule',
      resourceType: 'duplicate_schedule',
      summary: (r) => ({ enabled: r.enabled, everyHours: r.everyHours, dailyAt: r.dailyAt, timeZone: r.timeZone }),
    },
    {
      method: 'POST',
      path: '/duplicates/scan',
      action: 'duplicate.scan',
      resourceType: 'duplicate',
      summary: asAnswered,
    },
    {
      method: 'POST',
      path: '/duplicates/:id/merge',
      action: 'duplicate.merge',
      resourceType: 'duplicate',
      summary: asAnswered,
    },
    {
      method: 'POST',
      path: '/duplicates/:id/dismiss',
      action: 'duplicate.dismiss',
      resourceType: 'duplicate',
      summary: (r) => ({ id: r.id, status: r.status, score: r.score }),
    },
    // The erasure answer holds ids and counts only, never the identities it erased.
    { method: 'DELETE', path: '/profiles/:id', action: 'profile.erase', resourceType: 'profile', summary: asAnswered },

    {
      method: 'POST',
      path: '/failed-events/:id/replay',
      action: 'failed_event.replay',
      resourceType: 'failed_event',
      summary: asAnswered,
    },

    // The first sign-up makes an admin (later ones are refused): recorded, with the new person as actor.
    // Other better-auth routes (sign-in, sign-out, password changes) are not recorded.
    {
      method: 'POST',
      path: '/auth/sign-up/email',
      action: 'user.sign_up',
      resourceType: 'user',
      load: l.user,
      self: signedUp,
    },
    { method: 'POST', path: '/users', action: 'user.invite', resourceType: 'user', idFrom: 'response', load: l.user },
    { method: 'PATCH', path: '/users/:id', action: 'user.role_change', resourceType: 'user', load: l.user },
    { method: 'DELETE', path: '/users/:id', action: 'user.remove', resourceType: 'user', load: l.user },
    {
      method: 'POST',
      path: '/keys',
      action: 'api_key.create',
      resourceType: 'api_key',
      idFrom: 'response',
      load: l.apiKey,
    },
    { method: 'DELETE', path: '/keys/:id', action: 'api_key.revoke', resourceType: 'api_key', load: l.apiKey },
  ];
}

function signedUp(response: Record<string, unknown>) {
  const user = response.user as { id?: unknown; role?: unknown } | undefined;
  if (typeof user?.id !== 'string') return undefined;
  const role: Role = ROLES.includes(user.role as Role) ? (user.role as Role) : 'analyst';
  return { principal: { kind: 'session' as const, id: user.id, userId: user.id, role }, id: user.id };
}

// An import as the log keeps it: how it is set up and how far it got, never a row.
function importSummary(r: Record<string, unknown>) {
  const { format, dryRun, status, lastLine, rowsDone, rowsBad, rowsUnchanged, profilesCreated, profilesUpdated } = r;
  return { format, dryRun, status, lastLine, rowsDone, rowsBad, rowsUnchanged, profilesCreated, profilesUpdated };
}
