import { describe, expect, it } from "vitest";
import { averageAdd, averageInit, averageValue } from "../../machines/latencyAverage.js";
import type { AverageState } from "../../machines/latencyAverage.js";

const TAU = 1_000;

function addAll(samples: [at: number, x: number][], tau = TAU, start = samples[0]?.[0] ?? 0): AverageState {
  let a = averageInit(start);
  for (const [at, x] of samples) a = averageAdd(a, x, at, tau);
  return a;
}

describe("latencyAverage", () => {
  it("is 0 while empty, at any time", () => {
    const a = averageInit(0);
    expect(a).toEqual({ s: 0, w: 0, at: 0 });
    expect(averageValue(a, 0, TAU)).toBe(0);
    expect(averageValue(a, 60_000, TAU)).toBe(0);
  });

  it("irregular spacing: samples 100 @0, 200 @100, 50 @1100 with tau = 1000", () => {
    // t=0:    s = 100, w = 1
    // t=100:  k = e^-0.1 = 0.904837418
    //         s = 100·k + 200 = 290.483741804, w = 1·k + 1 = 1.904837418   → value 152.497918748
    // t=1100: k = e^-1   = 0.367879441
    //         s = 290.483741804·k + 50 = 156.862996604
    //         w = 1.904837418·k + 1   = 1.700750525                      → value  92.231632041
    let a = addAll([[0, 100]]);
    expect(averageValue(a, 0, TAU)).toBe(100);
    a = averageAdd(a, 200, 100, TAU);
    expect(a.s).toBeCloseTo(290.483741804, 8);
    expect(a.w).toBeCloseTo(1.904837418, 8);
    expect(averageValue(a, 100, TAU)).toBeCloseTo(152.497918748, 8);
    a = averageAdd(a, 50, 1_100, TAU);
    expect(a).toMatchObject({ at: 1_100 });
    expect(a.s).toBeCloseTo(156.862996604, 8);
    expect(a.w).toBeCloseTo(1.700750525, 8);
    expect(averageValue(a, 1_100, TAU)).toBeCloseTo(92.231632041, 8);
    // Read at t=2100 with no further samples: w·k = 1.700750525·e^-1 = 0.625671153 < 1, so the
    // value is s·k / 1 = 156.862996604·0.367879441 = 57.706671531 (decaying).
    expect(averageValue(a, 2_100, TAU)).toBeCloseTo(57.706671531, 8);
  });

  it("decays toward zero with time constant tau once samples stop", () => {
    const a = addAll([[0, 100]]);
    // w·k = e^-t/τ ≤ 1 for t ≥ 0, so the value is 100·e^-t/τ.
    expect(averageValue(a, 1_000, TAU)).toBeCloseTo(36.787944117, 8); // 100·e^-1
    expect(averageValue(a, 2_000, TAU)).toBeCloseTo(13.533528324, 8); // 100·e^-2
    expect(averageValue(a, 20_000, TAU)).toBeLessThan(1e-6);
    // Monotone: never grows while nothing comes.
    let prev = Infinity;
    for (let t = 0; t <= 10_000; t += 250) {
      const v = averageValue(a, t, TAU);
      expect(v).toBeLessThanOrEqual(prev);
      prev = v;
    }
  });

  it("with a heavy history, holds the mean until the weight decays under 1, then decays", () => {
    // 100 and 300 at t=0: s = 400, w = 2, mean 200.
    const a = addAll([[0, 100], [0, 300]]);
    // t=500: w·k = 2·e^-0.5 = 1.213061319 > 1 → value s/w = 200
    expect(averageValue(a, 500, TAU)).toBeCloseTo(200, 10);
    // t=1000: w·k = 2·e^-1 = 0.735758882 < 1 → value 400·e^-1 = 147.151776469
    expect(averageValue(a, 1_000, TAU)).toBeCloseTo(147.151776469, 8);
  });

  it("simultaneous samples each count with weight 1", () => {
    const a = addAll([[5, 10], [5, 20], [5, 60]]);
    expect(a).toEqual({ s: 90, w: 3, at: 5 });
    expect(averageValue(a, 5, TAU)).toBe(30);
  });

  it("one sample after a long gap reads as that sample", () => {
    let a = addAll([[0, 5_000]]);
    a = averageAdd(a, 120, 1_000_000, TAU);
    // k = e^-1000 underflows to 0: the old history is gone.
    expect(averageValue(a, 1_000_000, TAU)).toBe(120);
  });

  it("a sample older than the last update counts as if taken then, never inflating history", () => {
    let a = addAll([[1_000, 100]]);
    a = averageAdd(a, 300, 500, TAU);
    expect(a).toEqual({ s: 400, w: 2, at: 1_000 });
    // Reading in the past reads as of `at`.
    expect(averageValue(a, 0, TAU)).toBe(200);
  });

  it("frequent samples approach the mean of a steady signal", () => {
    let a = averageInit(0);
    for (let t = 0; t <= 20_000; t += 10) a = averageAdd(a, 40, t, TAU);
    expect(averageValue(a, 20_000, TAU)).toBeCloseTo(40, 10);
  });
});
