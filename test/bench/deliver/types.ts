// Shared types of the delivery benchmark: a leaf module, so its files import them without a cycle.

/** Database counters read before and after a phase. */
export interface PgCounters {
  commits: number;
  /** Sequential scans of the ledger (deliveries) and the rows they read. */
  ledgerScans: number;
  ledgerScanRows: number;
}

/** Mean duration of the plugin's send() calls of one destination (the server's own histogram). */
export interface SendCalls {
  calls: number;
  meanMs: number;
}
