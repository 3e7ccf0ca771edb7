/**
 * The shapes of flow governance (caps, quiet hours, the sends they count), apart from the logic in
 * governance.ts so that the facts can name them without an import cycle.
 */
import type { LocalTime } from './ast.ts';

/** Any channel: a cap on `*` counts the sends of every channel. */
export const ANY_CHANNEL = '*';

/** At most `max` messages on `channel` within any `windowHours`; only for members of `audience` when given. */
export interface FrequencyCap {
  channel: string;
  max: number;
  windowHours: number;
  audience?: string;
}

/** No message on `channel` from `start` to `end` (local, `HH:MM`; past midnight when `end` < `start`). */
export interface QuietHours {
  channel: string;
  start: LocalTime;
  end: LocalTime;
}

/** The workspace's rules for all flows (`GET/PUT /api/flow-governance`). */
export interface GovernanceSettings {
  caps: FrequencyCap[];
  quietHours: QuietHours[];
}

/** What the engine needs to govern a person's sends: the settings and each destination's channel. */
export interface GovernanceFacts {
  settings: GovernanceSettings;
  /** Destination id → channel (`email`, `sms`, `chat`, `webhook`, ...); a destination missing here has none. */
  channels: Record<string, string>;
}

/** A message sent to the person (a flow's send that was not skipped), as caps count it. */
export interface SentMessage {
  /** When the send was decided, epoch ms. */
  at: number;
  channel: string;
  /** Transactional sends are not counted. */
  transactional?: boolean;
  flowId?: string;
  priority?: number;
  key?: string;
}
