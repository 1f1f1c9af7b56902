/**
 * Simulation: load shedding on the TTFT average against an upstream whose TTFT
 * grows with load.
 *
 * Upstream: TTFT = 200 ms + 40 ms × (calls in flight, this one included), then
 * 500–1500 ms of generation. Threshold 1000 ms, so n* = 20 calls in flight, and
 * what the upstream serves within the threshold is n* / (1000 ms + 1000 ms mean
 * generation) = 10 calls/s. 60 workers call back to back through sluice with
 * `model.default.latency = { ttftMs: 1000, tauMs }`; the averages are fed as
 * SluiceService feeds them (latencyAverages over admissions.reports on an RxJS
 * scheduler in virtual time, each update sent to the model actor). Rejected
 * (`overloaded`) workers come back after `retryAfterMs`. Measured after a 60 s
 * warm-up over 600 s of virtual time.
 *
 * Which TTFT figure: the per-call mean. Shedding acts on a time-weighted mean of
 * reported TTFTs against the threshold, so the most it can promise is a mean at
 * or under the threshold; a p95 under the threshold would need a threshold set
 * below the SLO. p95 and the share of calls over the threshold are printed too.
 *
 * Result: averages alone never reached the target (mean TTFT ≤ 1000 ms with
 * goodput ≥ 80 %) at any tau: shedding on a signal that lags a whole call is
 * all-or-nothing, so when the average dipped every waiting worker was admitted at
 * once (60 in flight, TTFT 2600 ms). With the adaptive concurrency limit driven by
 * each report's TTFT (machines/latencyLimit.ts) the upstream is held near the load
 * it serves under the threshold: the target is met at tau 2 s and 15 s. At tau 1 s
 * the averages guard itself trips on noise and goodput falls under 80 %.
 */
import { afterAll, describe, expect, it } from "vitest";
import { timer } from "rxjs";
import { ManualClock } from "../../src/clock.js";
import { manualScheduler } from "./manualScheduler.js";
import { type SheddingResult, type SheddingScenario, capacityOf, nStarOf, runShedding } from "./sheddingScenario.js";
import { pct, table } from "./sim.js";

const SCENARIO: SheddingScenario = {
  seed: 7,
  baseTtftMs: 200,
  perCallMs: 40,
  decodeMs: [500, 1500],
  thresholdMs: 1000,
  workers: 60,
  durationMs: 600_000,
  warmupMs: 60_000,
};

const results: SheddingResult[] = [];
const meetsTarget = (r: SheddingResult) => r.ttftMean <= SCENARIO.thresholdMs && r.goodput >= 0.8;

afterAll(() => {
  const rows = results.map((r) => [
    r.label,
    r.throughputPerS.toFixed(2),
    pct(r.goodput),
    r.ttftMean.toFixed(0),
    r.ttftP50,
    r.ttftP95,
    r.ttftMax,
    pct(r.overShare),
    r.meanInFlight.toFixed(1),
    Number.isNaN(r.emaMean) ? "-" : r.emaMean.toFixed(0),
    r.rejects.overloaded ?? 0,
    meetsTarget(r) ? "yes" : "no",
  ]);
  console.log(
    table(
      `Shedding simulation: TTFT = ${SCENARIO.baseTtftMs} + ${SCENARIO.perCallMs}·inFlight ms, threshold ${SCENARIO.thresholdMs} ms → n* = ${nStarOf(SCENARIO)}, ` +
        `capacity under threshold ${capacityOf(SCENARIO).toFixed(1)} calls/s; ${SCENARIO.workers} workers, ` +
        `${SCENARIO.durationMs / 1000} s virtual, first ${SCENARIO.warmupMs / 1000} s excluded, seed ${SCENARIO.seed}`,
      ["variant", "calls/s", "goodput", "TTFT mean", "p50", "p95", "max", "> threshold", "mean in flight", "mean avg (sluice)", "overloaded rejects", "target met"],
      rows,
    ),
  );
});

describe("load-shedding simulation (virtual time)", () => {
  it("the manual RxJS scheduler runs in the ManualClock's time", () => {
    const clock = new ManualClock(0);
    const seen: number[] = [];
    timer(1500, 1000, manualScheduler(clock)).subscribe(() => seen.push(clock.now()));
    clock.advance(4000);
    expect(seen).toEqual([1500, 2500, 3500]);
  });

  let none: SheddingResult;
  it("without shedding every worker is in flight and TTFT is far over the threshold", () => {
    none = runShedding(SCENARIO, undefined, "no shedding");
    results.push(none);
    expect(none.meanInFlight).toBeCloseTo(SCENARIO.workers, 0);
    expect(none.overShare).toBe(1);
  });

  const variants: [string, number][] = [
    ["shedding, tauMs 1000", 1000],
    ["shedding, tauMs 2000", 2000],
    ["shedding, tauMs 15000 (protocol example)", 15000],
  ];
  for (const [label, tauMs] of variants) {
    it(`${label}: sheds (fewer calls in flight, lower mean TTFT than without)`, () => {
      const r = runShedding(SCENARIO, { ttftMs: SCENARIO.thresholdMs, tauMs }, label);
      results.push(r);
      expect(r.rejects.overloaded ?? 0).toBeGreaterThan(0);
      expect(r.meanInFlight).toBeLessThan(none.meanInFlight);
      expect(r.ttftMean).toBeLessThan(none.ttftMean);
    });
  }

  // Known gap (see the header and the report): expected to fail until shedding limits the
  // herd after `overloaded.off` (e.g. an adaptive concurrency limit driven by reported TTFTs).
  it("target: mean TTFT ≤ threshold with goodput ≥ 80 % of the under-threshold capacity (tau 2 s and the protocol's 15 s)", () => {
    const shed = results.filter((r) => r.label.startsWith("shedding"));
    expect(shed.length).toBe(variants.length);
    const byLabel = (l: string) => shed.find((r) => r.label.includes(l))!;
    expect(meetsTarget(byLabel("tauMs 2000"))).toBe(true);
    expect(meetsTarget(byLabel("tauMs 15000"))).toBe(true);
  });
});
