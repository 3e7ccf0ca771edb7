import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.ts';

describe('retention settings', () => {
  it('keep forever by default, and read days when set', () => {
    expect(loadConfig({}).retention).toEqual({ eventDays: null, deliveryDays: null, flowRunDays: null });
    expect(loadConfig({ CAIRN_EVENT_RETENTION_DAYS: '' }).retention.eventDays).toBeNull();
    expect(
      loadConfig({
        CAIRN_EVENT_RETENTION_DAYS: '90',
        CAIRN_DELIVERY_RETENTION_DAYS: '30',
        CAIRN_FLOW_RUN_RETENTION_DAYS: '180',
      }).retention,
    ).toEqual({ eventDays: 90, deliveryDays: 30, flowRunDays: 180 });
  });

  it('refuses what is not a whole number of days, and ledger or run retention shorter than retries', () => {
    expect(() => loadConfig({ CAIRN_EVENT_RETENTION_DAYS: 'ninety' })).toThrow(/CAIRN_EVENT_RETENTION_DAYS/);
    expect(() => loadConfig({ CAIRN_EVENT_RETENTION_DAYS: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ CAIRN_DELIVERY_RETENTION_DAYS: '3' })).toThrow(/CAIRN_DELIVERY_RETENTION_DAYS.*7/);
    expect(() => loadConfig({ CAIRN_FLOW_RUN_RETENTION_DAYS: '10' })).toThrow(/CAIRN_FLOW_RUN_RETENTION_DAYS.*30/);
  });
});
