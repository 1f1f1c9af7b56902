import { describe, expect, it } from "vitest";
import { LATENCY_LIMIT_DEFAULTS, latencyLimitInit, latencyLimitOnReport, latencyLimitSlots, sampleIsSlow } from "../../machines/latencyLimit.js";
import type { LatencyPolicy } from "../../machines/policy.js";

const p: LatencyPolicy = { ttftMs: 1000, tauMs: 15_000 };

describe("adaptive latency limit", () => {
  it("starts at 16 calls in flight, within its bounds", () => {
    expect(latencyLimitInit(p)).toEqual({ limit: 16, cutAt: null });
    expect(latencyLimitInit({ ...p, initialConcurrency: 4 }).limit).toBe(4);
    expect(latencyLimitInit({ ...p, maxConcurrency: 8 }).limit).toBe(8);
  });

  it("grows by 1/limit per fast report: one slot per limit's worth of good calls", () => {
    let s = latencyLimitInit(p);
    for (let i = 0; i < 16; i++) s = latencyLimitOnReport(s, p, { ttftMs: 500 }, i);
    expect(latencyLimitSlots(s)).toBe(16);
    expect(s.limit).toBeCloseTo(16.972, 3);
    s = latencyLimitOnReport(s, p, { ttftMs: 500 }, 20);
    expect(latencyLimitSlots(s)).toBe(17);
  });

  it("cuts ×0.9 on a slow report, at most once a second", () => {
    let s = latencyLimitInit(p);
    s = latencyLimitOnReport(s, p, { ttftMs: 1500 }, 10_000);
    expect(s).toEqual({ limit: 16 * LATENCY_LIMIT_DEFAULTS.cut, cutAt: 10_000 });
    // More slow reports from calls already in flight: the same signal.
    for (const t of [10_100, 10_500, 10_999]) s = latencyLimitOnReport(s, p, { ttftMs: 3000 }, t);
    expect(s.limit).toBeCloseTo(14.4);
    s = latencyLimitOnReport(s, p, { ttftMs: 3000 }, 11_000);
    expect(s.limit).toBeCloseTo(12.96);
  });

  it("never leaves its bounds, and a report without a watched figure changes nothing", () => {
    let s = latencyLimitInit({ ...p, minConcurrency: 2, initialConcurrency: 2 });
    for (let t = 0; t < 10; t++) s = latencyLimitOnReport(s, { ...p, minConcurrency: 2 }, { ttftMs: 9999 }, t * 1000);
    expect(s.limit).toBe(2);
    expect(latencyLimitOnReport(s, p, { itlMs: 5 }, 99_000)).toBe(s);
    expect(sampleIsSlow({ itlMs: 30, tauMs: 1 }, { ttftMs: 5000, itlMs: 31 })).toBe(true);
    expect(sampleIsSlow({ itlMs: 30, tauMs: 1 }, { ttftMs: 5000 })).toBeUndefined();
  });
});
