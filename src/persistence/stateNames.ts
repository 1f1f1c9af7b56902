/**
 * Default names of the journal stream and the snapshot bucket for a subject
 * prefix. Each prefix gets its own, so that two sluice deployments on one NATS
 * server (say `sluice` and `staging.sluice`) never restore each other's state:
 * `sluice` keeps the plain `SLUICE_JOURNAL` / `SLUICE_STATE`, any other prefix
 * gets its tokens appended with `_` for the dots (`SLUICE_JOURNAL_staging_sluice`).
 */
export const DEFAULT_PREFIX_NAMES = { journalStream: "SLUICE_JOURNAL", stateBucket: "SLUICE_STATE" } as const;

export function stateNames(prefix: string): { journalStream: string; stateBucket: string } {
  if (prefix === "sluice") return { ...DEFAULT_PREFIX_NAMES };
  const suffix = prefix.replace(/[^A-Za-z0-9_-]/g, "_");
  return { journalStream: `${DEFAULT_PREFIX_NAMES.journalStream}_${suffix}`, stateBucket: `${DEFAULT_PREFIX_NAMES.stateBucket}_${suffix}` };
}
