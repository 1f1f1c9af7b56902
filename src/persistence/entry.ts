/**
 * A journal entry: usage applied to scopes, recorded before it is applied.
 * Replaying the entries after a snapshot's sequence onto the snapshot gives the
 * usage counters (budgets) as they were acknowledged.
 */
import type { ResetWhat, Usage } from "../../machines/scope.js";

/** What the entry settles: a report (`applied` to a live lease, `late` after its expiry, `orphan` without a known lease) or an unreported lease's expiry at its estimate. */
export type EntryStatus = "applied" | "late" | "orphan" | "expired";

export interface JournalEntry {
  v: 1;
  /** When it was decided, ms epoch (replayed as the event time). */
  ts: number;
  type: "use";
  /** Every scope the usage counts against (key, model, named scopes, parents). */
  scopes: readonly string[];
  /** Usage to add to each scope (for `late`: the difference to the estimate already settled). */
  usage: Usage;
  lease?: string;
  status: EntryStatus;
  /** The caller's key (the journal subject's partition) and model. */
  key: string;
  model: string;
}

/**
 * An operator's reset (`admin.reset`), recorded before it is applied like usage is,
 * so that replay puts it between the same entries as it was applied. Published on
 * `<p>.journal.admin.<scope>` (two tokens: never one key's partition).
 */
export interface ResetEntry {
  v: 1;
  ts: number;
  type: "reset";
  /** The one scope reset. */
  scopes: [string];
  what: ResetWhat;
}

/** Anything the journal records. */
export type LogEntry = JournalEntry | ResetEntry;

/**
 * JetStream message id of an entry, for the stream's duplicate window. One id per lease
 * for every report status (`r:`), so a report retried after a restart, when it may plan
 * as `orphan` where it was `applied` before, is still recognised; expiries get their own
 * (`x:`), since a lease legitimately has an expiry and then a late report.
 */
export function entryMsgID(e: Pick<JournalEntry, "lease" | "status">): string | undefined {
  if (e.lease === undefined) return undefined;
  return `${e.status === "expired" ? "x" : "r"}:${e.lease}`;
}

/** Where entries are recorded before they are applied. */
export interface UsageJournal {
  /**
   * Resolves once `entry` is durably stored, with its sequence; `duplicate` when an entry
   * with the same message id was stored before (and `seq` is that one's). Rejects when
   * it cannot be stored (JetStream unavailable, timeout).
   */
  append(entry: LogEntry, msgID: string | undefined): Promise<{ seq: number; duplicate: boolean }>;
}

const RESETS: readonly string[] = ["breaker", "usage", "all"] satisfies ResetWhat[];

/** Parse an entry read back from the journal; undefined for anything not an entry of version 1. */
export function parseEntry(data: unknown): LogEntry | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const e = data as Partial<JournalEntry> | Partial<ResetEntry>;
  if (e.v !== 1 || !Array.isArray(e.scopes) || typeof e.ts !== "number") return undefined;
  if (e.type === "reset") {
    return e.scopes.length === 1 && typeof e.scopes[0] === "string" && typeof e.what === "string" && RESETS.includes(e.what) ? (e as ResetEntry) : undefined;
  }
  if (e.type !== "use" || typeof e.usage !== "object" || e.usage === null) return undefined;
  return e as JournalEntry;
}
