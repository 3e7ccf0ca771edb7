import { type FlowDefinition, factsNeeded } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { FactsNeeds } from './people.ts';
import { flowVersions, liveFlows } from './queries.ts';

/** A published version of a flow, as the runner uses it. */
export interface FlowVersion {
  id: string;
  version: number;
  def: FlowDefinition;
  /** What its steps need to know about a person beyond the basics. */
  needs: FactsNeeds;
  /** One active run per person (entry.concurrent is not set). */
  exclusive: boolean;
}

/** The published versions a runner has met, kept in memory (a version never changes once published). */
export interface FlowCatalog {
  /** The versions live flows enter people into now (read on every call: publishing and pausing show at once). */
  live(sql: Tx): Promise<FlowVersion[]>;
  /** These versions, by `versionKey`. */
  versions(sql: Tx, pairs: readonly { flowId: string; version: number }[]): Promise<Map<string, FlowVersion>>;
}

/** The key of a flow's version in a catalog's maps. */
export const versionKey = (flowId: string, version: number): string => `${flowId}@${version}`;

/**
 * What a step of this flow needs to know about a person.
 *
 * @example
 * needsOf(def); // { events: ['Order Completed'], consent: false, zone: true }
 */
export function needsOf(def: FlowDefinition): FactsNeeds {
  const needed = factsNeeded(def);
  return {
    events: needed.events,
    consent: needed.consent,
    zone: def.nodes.some((n) => n.type === 'wait_until'),
  };
}

/**
 * Creates a runner's catalog of flow versions.
 *
 * @example
 * const catalog = createCatalog();
 * const live = await catalog.live(sql);
 */
export function createCatalog(): FlowCatalog {
  const known = new Map<string, FlowVersion>();
  async function versions(sql: Tx, pairs: readonly { flowId: string; version: number }[]) {
    const missing = new Map<string, { id: string; version: number }>();
    for (const p of pairs) {
      const key = versionKey(p.flowId, p.version);
      if (!known.has(key)) missing.set(key, { id: p.flowId, version: p.version });
    }
    for (const row of await flowVersions(sql, [...missing.values()])) {
      known.set(versionKey(row.id, row.version), {
        id: row.id,
        version: row.version,
        def: row.definition,
        needs: needsOf(row.definition),
        exclusive: !row.definition.entry.concurrent,
      });
    }
    const out = new Map<string, FlowVersion>();
    for (const p of pairs) {
      const key = versionKey(p.flowId, p.version);
      const v = known.get(key);
      if (v) out.set(key, v);
    }
    return out;
  }
  return {
    versions,
    async live(sql) {
      const live = await liveFlows(sql);
      const found = await versions(
        sql,
        live.map((f) => ({ flowId: f.id, version: f.version })),
      );
      return [...found.values()];
    },
  };
}
