import { describe, expect, it } from "vitest";
import { roundOrder } from "../../bench/lib/roundOrder.js";
import { allSeries } from "../../bench/lib/series.js";

const plan = { levels: [1, 16, 64, 256], batchLevels: [1, 16, 64, 256], chunks: [1, 32], batchSize: 100, clientLevel: 64 };
const names = (steps: ReturnType<typeof roundOrder>) => steps.map((s) => `${s.series.id}@${s.level}${s.pauseMs ? ` +${s.pauseMs}` : ""}`);

describe("roundOrder", () => {
  it("goes level by level, the compared series side by side, and waits for sluice's leases before another target", () => {
    expect(names(roundOrder(allSeries(plan), 1100))).toEqual([
      "echo@1", "rlf-redis@1", "sluice@1", "batch@1",
      "echo@16 +1100", "rlf-redis@16", "sluice@16", "batch@16",
      "echo@64 +1100", "rlf-redis@64", "sluice@64", "client@64", "batch@64",
      "echo@256 +1100", "rlf-redis@256", "sluice@256", "batch@256",
      "core@1 +1100", "plain@1", "rlf-memory@1", "core@32", "plain@32", "rlf-memory@32",
    ]);
  });

  it("measures every series at every one of its levels once", () => {
    const series = allSeries(plan);
    const steps = roundOrder(series, 0);
    expect(steps).toHaveLength(series.reduce((a, s) => a + s.levels.length, 0));
    expect(new Set(names(steps)).size).toBe(steps.length);
  });

  it("pauses before the first step when the round before ended on sluice", () => {
    const only = allSeries(plan).filter((s) => s.id === "echo" || s.id === "sluice");
    expect(names(roundOrder(only, 500, true))).toEqual(["echo@1 +500", "sluice@1", "echo@16 +500", "sluice@16", "echo@64 +500", "sluice@64", "echo@256 +500", "sluice@256"]);
    expect(names(roundOrder(only.filter((s) => s.id === "sluice"), 500, true))).toEqual(["sluice@1", "sluice@16", "sluice@64", "sluice@256"]);
  });
});
