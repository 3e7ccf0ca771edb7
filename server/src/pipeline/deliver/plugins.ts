import type { PluginDefinition } from '@cairn/plugin-api';
import emailSmtp from '@cairn/plugin-email-smtp';
import segmentForward from '@cairn/plugin-segment-forward';
import slack from '@cairn/plugin-slack';
import smsHttp from '@cairn/plugin-sms-http';
import webhook from '@cairn/plugin-webhook';

/**
 * The plugins this server can deliver with, by name. A plugin is installed by adding its package
 * and one line here; its definition is checked by definePlugin when this module loads.
 */
export const PLUGINS: ReadonlyMap<string, Readonly<PluginDefinition>> = new Map(
  [webhook, emailSmtp, slack, smsHttp, segmentForward].map((p) => [p.name, p as unknown as Readonly<PluginDefinition>]),
);
