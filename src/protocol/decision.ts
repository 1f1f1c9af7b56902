import type { LimitInfo, Reason } from "../../machines/scope.js";

export type { LimitInfo, Reason };

/** The reply to an admission. */
export type Decision =
  | { decision: "admit"; reason: "ok"; lease: string; delayMs: number; limits: LimitInfo[] }
  | {
      decision: "reject";
      reason: Exclude<Reason, "ok">;
      scope: string;
      retryAfterMs?: number;
      limits: LimitInfo[];
      fallback?: string;
    };

/** A decision as published on `<p>.decisions.<decision>.<model>`. */
export interface DecisionEvent {
  ts: number;
  key: string;
  model: string;
  scopes: Record<string, string>;
  tokens: number;
  cost: number;
  decision: "admit" | "reject";
  reason: Reason;
  scope?: string;
  lease?: string;
  delayMs?: number;
  retryAfterMs?: number;
  fallback?: string;
}

/** The reply to a report sent as a request. */
export interface ReportAck {
  ok: true;
  /** `applied`: settled against its lease; `duplicate`: already applied; `late`: its lease had expired, the difference to the estimate was applied; `orphan`: unknown lease, counted against key and model. */
  status: "applied" | "duplicate" | "late" | "orphan";
}
