/** How the CLI prints decisions, events and scopes for a human (with `--json`, replies are printed as they are). */
import type { Decision, DecisionEvent } from "../protocol/decision.js";
import type { ScopeInspection } from "../client/replies.js";

const GREEN = "\x1b[32m";
const RED = "\x1b[31m";
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

/** Colours for a terminal, or none. */
export interface Paint {
  admit(s: string): string;
  reject(s: string): string;
  dim(s: string): string;
}

/** Colours when `tty` and the environment allow them (`NO_COLOR` off, or `FORCE_COLOR` on). */
export function paint(tty: boolean | undefined, env: NodeJS.ProcessEnv): Paint {
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0" && env.FORCE_COLOR !== "";
  const on = force || (tty === true && (env.NO_COLOR === undefined || env.NO_COLOR === ""));
  const wrap = (code: string) => (s: string) => (on ? `${code}${s}${RESET}` : s);
  return { admit: wrap(GREEN), reject: wrap(RED), dim: wrap(DIM) };
}

/** A name as it reads on one line: bare when it is plain, JSON-quoted otherwise. */
export function q(s: string): string {
  return /^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s);
}

/** `admit ok lease=… delay=0ms` or `reject rate_limited scope=… retryAfter=…ms`, then one line per limit. */
export function formatDecision(d: Decision, p: Paint): string {
  const head =
    d.decision === "admit"
      ? `${p.admit("admit")} ${d.reason} lease=${d.lease} delay=${d.delayMs}ms`
      : `${p.reject("reject")} ${d.reason} scope=${q(d.scope)}` +
        (d.retryAfterMs !== undefined ? ` retryAfter=${d.retryAfterMs}ms` : "") +
        (d.fallback !== undefined ? ` fallback=${q(d.fallback)}` : "");
  const limits = d.limits.map(
    (l) => `  ${q(l.scope)} ${l.kind} ${l.remaining}/${l.limit} left` + (l.resetMs !== undefined ? ` reset=${l.resetMs}ms` : ""),
  );
  return [head, ...limits].join("\n");
}

/** One line per decision event: time, decision, reason, key, model, then lease/delay or scope/retry/fallback. */
export function formatDecisionEvent(ev: DecisionEvent, p: Paint): string {
  const time = Number.isFinite(ev.ts) ? new Date(ev.ts).toISOString() : String(ev.ts);
  const decision = ev.decision === "admit" ? p.admit("admit ") : p.reject("reject");
  const parts = [time, decision, String(ev.reason).padEnd(16), `key=${q(String(ev.key))}`, `model=${q(String(ev.model))}`];
  if (ev.tokens) parts.push(`tokens=${ev.tokens}`);
  if (ev.cost) parts.push(`cost=${ev.cost}`);
  if (ev.lease !== undefined) parts.push(`lease=${ev.lease}`);
  if (ev.delayMs) parts.push(`delay=${ev.delayMs}ms`);
  if (ev.scope !== undefined) parts.push(`scope=${q(ev.scope)}`);
  if (ev.retryAfterMs !== undefined) parts.push(`retryAfter=${ev.retryAfterMs}ms`);
  if (ev.fallback !== undefined) parts.push(`fallback=${q(ev.fallback)}`);
  return parts.join(" ");
}

/** A scope for a human: state, then each limit with what remains, then the effective policy. */
export function formatInspection(s: ScopeInspection): string {
  const lines = [`${s.scope} ${s.live ? `live state=${JSON.stringify(s.state)}` : "not live"}`];
  const v = s.view;
  if (v) {
    for (const [kind, b] of Object.entries(v.buckets ?? {})) lines.push(`  ${kind} ${b.remaining}/${b.limit} left (burst ${b.burst})`);
    if (v.concurrency) lines.push(`  concurrency ${v.concurrency.held}/${v.concurrency.limit} held`);
    for (const b of v.budgets ?? (v.budget ? [v.budget] : [])) {
      lines.push(`  budget ${b.used} used + ${b.reserved} reserved of ${b.limit} ${b.unit}, ${b.remaining} left, next reset ${b.nextReset ?? "never"}`);
    }
    if (v.breaker !== undefined) lines.push(`  breaker ${v.breaker}`);
    if (v.pacing) lines.push(`  pacing interval=${v.pacing.intervalMs}ms delay=${v.pacing.delayMs}ms`);
    if (v.latency) {
      const l = v.latency;
      lines.push(`  latency ttft=${round(l.ttftMs)}ms itl=${round(l.itlMs)}ms${l.overloaded ? " OVERLOADED" : ""}`);
    }
  }
  lines.push(`  policy ${JSON.stringify(s.policy)}`);
  return lines.join("\n");
}

const round = (n: number | undefined) => (n === undefined ? "-" : String(Math.round(n * 10) / 10));

