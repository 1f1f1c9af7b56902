/**
 * Simulation: adaptive pacing against an upstream with a hidden capacity.
 *
 * The upstream serves C = 20 requests/s (a token bucket of burst 2, checked when a
 * call arrives) and answers 429 above it. 50 workers call back to back (200–500 ms
 * per accepted call, 20–60 ms per 429), which offers ~7× the capacity. Over 600 s
 * of virtual time, after a 60 s warm-up, we measure
 *   goodput   = successful calls / (C · T)
 *   429 share = 429s / all upstream calls
 * for sluice's adaptive pacing (which does not know C) and for workers that sleep
 * a fixed delay after a 429. Target (the issue): goodput ≥ 0.9, 429 share < 0.05.
 *
 * Why these adaptive values (see the note in the report for the sweep):
 * - at equilibrium the 429 share is about ln(1/recovery) / (recoverAfter·ln(factor) + ln(1/recovery))
 *   (each 429 multiplies the interval by `factor`, each `recoverAfter` oks by `recovery`):
 *   1.2 / 0.95 / 10 gives ≈ 2.7 %; the protocol's example 2 / 0.8 / 5 would give ≈ 6 %;
 * - a small `factor` because every 429 report grows the interval, including the 429s
 *   of calls that were already paced under the old interval: with factor 2 a burst of
 *   such reports drives the interval to maxMs (the cascade, see the last rows);
 * - a short `maxDelayMs` (250 ms) because slots are handed out ahead: with the default
 *   patience (maxMs, 5 s) idle workers book up to 5 s of slots, so the feedback of a
 *   pacing change arrives seconds late and the loop oscillates.
 * baseMs and maxMs stay at the protocol's example values (200, 5000).
 */
import { afterAll, describe, expect, it } from "vitest";
import type { AdaptivePolicy } from "../../machines/policy.js";
import { type PacingResult, type PacingScenario, runPacing } from "./pacingScenario.js";
import { pct, table } from "./sim.js";

const SCENARIO: PacingScenario = {
  seed: 42,
  capacityPerS: 20,
  burst: 2,
  workers: 50,
  okLatencyMs: [200, 500],
  rejectLatencyMs: [20, 60],
  retryAfter: "none",
  durationMs: 600_000,
  warmupMs: 60_000,
};

/** Tuned for this scenario without knowing C. */
const TUNED: AdaptivePolicy = { baseMs: 200, maxMs: 5000, factor: 1.2, recovery: 0.95, recoverAfter: 10, maxDelayMs: 250 };
/** The example of PROTOCOL.md "Policy". */
const PROTOCOL_EXAMPLE: AdaptivePolicy = { baseMs: 200, maxMs: 5000, factor: 2, recovery: 0.8, recoverAfter: 5 };

const results: PacingResult[] = [];
const policyText = (a: AdaptivePolicy) =>
  `base ${a.baseMs}, max ${a.maxMs}, ×${a.factor}, recovery ${a.recovery}/${a.recoverAfter}, maxDelay ${a.maxDelayMs ?? a.maxMs}`;

afterAll(() => {
  const rows = results.map((r) => [
    r.label,
    r.calls,
    r.oks,
    r.r429,
    pct(r.goodput),
    pct(r.share429),
    r.rejects ? (r.rejects.backoff ?? 0) : "-",
    r.meanDelayMs !== undefined ? r.meanDelayMs.toFixed(0) : "-",
    r.finalIntervalMs !== undefined ? r.finalIntervalMs.toFixed(1) : "-",
  ]);
  console.log(
    table(
      `Pacing simulation: hidden capacity ${SCENARIO.capacityPerS}/s (burst ${SCENARIO.burst}), ${SCENARIO.workers} workers, ` +
        `${SCENARIO.durationMs / 1000} s virtual, first ${SCENARIO.warmupMs / 1000} s excluded, seed ${SCENARIO.seed}\n` +
        `tuned adaptive: ${policyText(TUNED)}\nprotocol example: ${policyText(PROTOCOL_EXAMPLE)}`,
      ["variant", "upstream calls", "ok", "429", "goodput", "429 share", "sluice rejects (backoff)", "mean delayMs", "final interval ms"],
      rows,
    ),
  );
});

describe("pacing simulation (virtual time)", () => {
  it("sluice, tuned adaptive pacing, upstream without Retry-After: goodput ≥ 90 %, 429 share < 5 %", () => {
    const r = runPacing(SCENARIO, { kind: "sluice", adaptive: TUNED }, "sluice tuned, no Retry-After");
    results.push(r);
    expect(r.goodput).toBeGreaterThanOrEqual(0.9);
    expect(r.share429).toBeLessThan(0.05);
    // Settled near the hidden 1000/C = 50 ms spacing, without being told C.
    expect(r.finalIntervalMs).toBeGreaterThan(35);
    expect(r.finalIntervalMs).toBeLessThan(75);
  });

  it("sluice, tuned, upstream with an exact Retry-After (ms): the same target", () => {
    // The exact Retry-After (time to the next token, ≤ 50 ms) is never longer than the interval, so it changes nothing.
    const r = runPacing({ ...SCENARIO, retryAfter: "exact" }, { kind: "sluice", adaptive: TUNED }, "sluice tuned, exact Retry-After");
    results.push(r);
    expect(r.goodput).toBeGreaterThanOrEqual(0.9);
    expect(r.share429).toBeLessThan(0.05);
  });

  it("fixed delays: workers that sleep 1 s (or 5 s) after a 429 use the capacity but most calls are 429s", () => {
    const f1 = runPacing(SCENARIO, { kind: "fixed", delayMs: 1000 }, "fixed 1000 ms after 429");
    const f5 = runPacing(SCENARIO, { kind: "fixed", delayMs: 5000 }, "fixed 5000 ms after 429");
    results.push(f1, f5);
    expect(f1.share429).toBeGreaterThan(0.5);
    expect(f5.goodput).toBeLessThan(0.9);
    expect(f5.share429).toBeGreaterThan(0.2);
  });

  it("is deterministic: the same seed gives the same run", () => {
    const short = { ...SCENARIO, durationMs: 90_000, warmupMs: 30_000 };
    const a = runPacing(short, { kind: "sluice", adaptive: TUNED }, "a");
    const b = runPacing(short, { kind: "sluice", adaptive: TUNED }, "b");
    expect({ ...a, label: "" }).toEqual({ ...b, label: "" });
  });

  // Printed for the record, not the target: known weaknesses (see the report).
  it("an upstream Retry-After in whole seconds pauses the model; it does not become everyone's spacing", () => {
    const r = runPacing({ ...SCENARIO, retryAfter: "seconds" }, { kind: "sluice", adaptive: TUNED }, "sluice tuned, Retry-After in seconds");
    results.push(r);
    // Taken as the interval (PROTOCOL.md's wording) this gave 12.6% goodput: one call a second for all callers.
    expect(r.goodput).toBeGreaterThan(0.7);
    expect(r.share429).toBeLessThan(0.05);
  });

  it("weakness: the protocol's example adaptive values collapse goodput here", () => {
    const r = runPacing(SCENARIO, { kind: "sluice", adaptive: PROTOCOL_EXAMPLE }, "sluice protocol example");
    results.push(r);
    expect(r.goodput).toBeLessThan(0.5);
  });
});
