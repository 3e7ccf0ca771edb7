import { compareRefs, compareTraitEvents, consentFromEvent, type JsonObject } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { IdentifyContext, LoadedEvent } from './types.ts';

// Consent history as proof of consent: a row per change of a profile's choice for a purpose, from events
// (context.consent.categoryPreferences) and the API. The state in force is the latest row by time.

/**
 * Rebuilds the consent history events recorded for these profiles from all their events (the API's
 * entries, and those of events retention dropped, stay, and count as the choice in force from their
 * time): an event's choice is kept when it differs from the one in force just before it, as
 * `saveConsent` does for events arriving in order.
 * Needed when a profile's events change other than by appending later ones (an earlier event arrives
 * late; a merge, split or unmerge moves events): the history kept so far left out choices that
 * repeated the one in force then, and a change now inserted before them makes them changes again —
 * without the rebuild the profile would show the late, older choice as its current one.
 */
export async function rebuildConsent(
  tx: Tx,
  profiles: readonly string[],
  ctx: Pick<IdentifyContext, 'purposes'>,
): Promise<void> {
  if (!profiles.length) return;
  // Choices of events retention dropped stay as they are (nothing to rebuild them from): like the API's,
  // they count as the choice in force from their time.
  await tx`
    DELETE FROM consent_changes c
    WHERE c.profile_id = ANY(${profiles}::uuid[]) AND c.source = 'event'
      AND EXISTS (SELECT 1 FROM events e WHERE e.id = c.event_id)`;
  const [events, api] = await Promise.all([
    tx<{ id: string; profile_id: string; timestamp: Date; payload: JsonObject }[]>`
      SELECT id, profile_id, timestamp, payload FROM events
      WHERE profile_id = ANY(${profiles}::uuid[]) AND payload #> '{context,consent,categoryPreferences}' IS NOT NULL`,
    tx<{ profile_id: string; purpose: string; granted: boolean; at: Date }[]>`
      SELECT profile_id, purpose, granted, at FROM consent_changes
      WHERE profile_id = ANY(${profiles}::uuid[]) ORDER BY at, id`,
  ]);
  // One timeline per profile and purpose: by time; at the same time API entries first (as saveConsent
  // compares with entries at or before the event's time), then events in fold order.
  const items = api.map((r, n) => ({ p: r.profile_id, u: r.purpose, g: r.granted, ts: r.at.getTime(), e: '', n }));
  for (const r of events) {
    for (const [u, g] of consentFromEvent(r.payload, ctx.purposes)) {
      items.push({ p: r.profile_id, u, g, ts: r.timestamp.getTime(), e: String(r.id), n: 0 });
    }
  }
  items.sort(
    (a, b) =>
      a.ts - b.ts ||
      (!a.e || !b.e
        ? Number(!!a.e) - Number(!!b.e) || a.n - b.n
        : compareTraitEvents({ ts: a.ts, id: a.e }, { ts: b.ts, id: b.e })),
  );
  const inForce = new Map<string, boolean>();
  const rows: { p: string; u: string; g: boolean; t: string; e: string }[] = [];
  for (const i of items) {
    const id = `${i.p}\n${i.u}`;
    if (i.e && inForce.get(id) !== i.g) rows.push({ p: i.p, u: i.u, g: i.g, t: new Date(i.ts).toISOString(), e: i.e });
    inForce.set(id, i.g);
  }
  if (!rows.length) return;
  await tx`
    INSERT INTO consent_changes (profile_id, purpose, granted, at, source, event_id)
    SELECT x.p, x.u, x.g, x.t, 'event', x.e
    FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (p uuid, u text, g boolean, t timestamptz, e bigint)
    ORDER BY x.t, x.e`;
}

/** Consent choices carried by events, recorded when they change the profile's state for a purpose. */
export async function saveConsent(
  tx: Tx,
  events: readonly LoadedEvent[],
  lookup: ReadonlyMap<string, string>,
  ctx: IdentifyContext,
): Promise<void> {
  const rows: { p: string; u: string; g: boolean; t: string; e: string }[] = [];
  for (const e of events) {
    const profile = e.keys[0] ? lookup.get(e.keys[0]) : undefined;
    if (!profile) continue;
    for (const [purpose, granted] of consentFromEvent(e.payload, ctx.purposes)) {
      rows.push({ p: profile, u: purpose, g: granted, t: new Date(e.ts).toISOString(), e: e.id });
    }
  }
  if (!rows.length) return;
  rows.sort((a, b) => compareRefs({ ts: Date.parse(a.t), eventId: a.e }, { ts: Date.parse(b.t), eventId: b.e }));
  // A row is a change when it differs from the choice in force just before it: the latest entry at or
  // before its time among the stored history (API entries included) and the batch's earlier rows.
  // Comparing a batch's later rows with its earlier ones alone misses an API entry between them.
  const stored = await tx<{ p: string; u: string; g: boolean; us: string }[]>`
    SELECT profile_id AS p, purpose AS u, granted AS g, (extract(epoch FROM at) * 1000000)::bigint::text AS us
    FROM consent_changes WHERE profile_id = ANY(${[...new Set(rows.map((r) => r.p))]}::uuid[])
    ORDER BY at, id`;
  const timelines = new Map<string, { us: bigint; g: boolean; row?: (typeof rows)[number] }[]>();
  const add = (id: string, item: { us: bigint; g: boolean; row?: (typeof rows)[number] }) =>
    timelines.set(id, [...(timelines.get(id) ?? []), item]);
  for (const r of rows) add(`${r.p}\n${r.u}`, { us: BigInt(Date.parse(r.t)) * 1000n, g: r.g, row: r });
  for (const s of stored) if (timelines.has(`${s.p}\n${s.u}`)) add(`${s.p}\n${s.u}`, { us: BigInt(s.us), g: s.g });
  const changes: (typeof rows)[number][] = [];
  for (const items of timelines.values()) {
    // By time; at the same time stored entries first (stable: batch rows stay in fold order).
    items.sort((a, b) => (a.us < b.us ? -1 : a.us > b.us ? 1 : Number(!!a.row) - Number(!!b.row)));
    let inForce: boolean | undefined;
    for (const i of items) {
      if (i.row && i.g !== inForce) changes.push(i.row);
      inForce = i.g;
    }
  }
  if (!changes.length) return;
  await tx`
    INSERT INTO consent_changes (profile_id, purpose, granted, at, source, event_id)
    SELECT x.p, x.u, x.g, x.t, 'event', x.e
    FROM json_to_recordset(${JSON.stringify(changes)}::text::json) AS x (p uuid, u text, g boolean, t timestamptz, e bigint)
    ORDER BY x.t, x.e`;
}
