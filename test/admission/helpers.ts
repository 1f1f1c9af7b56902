/**
 * An in-process sluice on virtual time: a registry and admissions over a
 * {@link ManualClock}, with requests and reports going through the wire schemas.
 */
import { ManualClock } from "../../src/clock.js";
import { Admissions } from "../../src/admission/Admissions.js";
import type { Decision } from "../../src/protocol/decision.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { type AdmitRequestInput, type ReportInput, admitRequestSchema, reportSchema } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import type { ScopeContext } from "../../machines/scope.js";

export type Admit = Extract<Decision, { decision: "admit" }>;
export type Reject = Extract<Decision, { decision: "reject" }>;

export { mulberry32 } from "../helpers/prng.js";

export interface Sluice {
  clock: ManualClock;
  registry: ScopeRegistry;
  admissions: Admissions;
  /** Admit and expect an answer at once. */
  admit(req: AdmitRequestInput): Decision;
  /** Admit with `waitMs`: expect a promise. */
  admitWaiting(req: AdmitRequestInput): Promise<Decision>;
  report(rep: ReportInput): ReturnType<Admissions["report"]>;
  /** A live scope's context (throws if the scope has no actor). */
  ctx(scope: string): ScopeContext;
  /** Replace the policy at run time, as `admin.policy.set` does. */
  setPolicy(doc: unknown): void;
}

/** `random` defaults to 0: jitter multiplier at its minimum (1), so every `retryAfterMs` is exact. */
export function sluice(doc: unknown, opts: { start?: number; random?: () => number } = {}): Sluice {
  const clock = new ManualClock(opts.start);
  const registry = new ScopeRegistry({ policy: parsePolicy(doc), clock });
  const admissions = new Admissions({ registry, clock, random: opts.random ?? (() => 0) });
  return {
    clock,
    registry,
    admissions,
    admit(req) {
      const d = admissions.admit(admitRequestSchema.parse(req));
      if (d instanceof Promise) throw new Error("expected an answer at once, got a promise");
      return d;
    },
    admitWaiting(req) {
      const d = admissions.admit(admitRequestSchema.parse(req));
      if (!(d instanceof Promise)) throw new Error(`expected to wait, got ${JSON.stringify(d)}`);
      return d;
    },
    report: (rep) => admissions.report(reportSchema.parse(rep)),
    ctx(scope) {
      const c = registry.context(scope);
      if (!c) throw new Error(`no live actor for ${scope}`);
      return c;
    },
    setPolicy(next) {
      registry.setPolicy(parsePolicy(next));
      admissions.policyChanged();
    },
  };
}

export function admitted(d: Decision): Admit {
  if (d.decision !== "admit") throw new Error(`expected admit, got ${JSON.stringify(d)}`);
  return d;
}

export function rejected(d: Decision): Reject {
  if (d.decision !== "reject") throw new Error(`expected reject, got ${JSON.stringify(d)}`);
  return d;
}

/** Let resolved promises run their callbacks (no timers, no wall clock). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Track whether a promise has settled yet. */
export function track<T>(p: Promise<T>): { settled: () => boolean; value: () => T | undefined } {
  let done = false;
  let v: T | undefined;
  void p.then((x) => {
    done = true;
    v = x;
  });
  return { settled: () => done, value: () => v };
}
