import { describe, expect, it } from "vitest";
import { WindowCpuReader, parseProcStatCpuMs, processCpuMs } from "../../bench/lib/processCpu.js";
import { cpuTable, summarize } from "../../bench/lib/report.js";
import { WINDOW_END, WINDOW_START, type LoadResult } from "../../bench/lib/result.js";
import { allSeries } from "../../bench/lib/series.js";

// A /proc/<pid>/stat line (fields 14 and 15: utime 250, stime 50 ticks) whose command holds spaces and a ")".
const statLine = (comm: string, utime: number, stime: number): string =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1000 0 0 0 ${utime} ${stime} 0 0 20 0 3 0 12345 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0`;

describe("parseProcStatCpuMs", () => {
  it("reads user + system time after the command name, whatever the name holds", () => {
    expect(parseProcStatCpuMs(statLine("node", 250, 50), 100)).toBe(3000);
    expect(parseProcStatCpuMs(statLine("a) b (c", 250, 50), 100)).toBe(3000);
    expect(parseProcStatCpuMs(statLine("nats-server", 7, 3), 1000)).toBe(10);
  });

  it("gives nothing for text that is not such a line", () => {
    expect(parseProcStatCpuMs("", 100)).toBeUndefined();
    expect(parseProcStatCpuMs("4242 (node) S 1", 100)).toBeUndefined();
  });

  it("reads this process, and nothing for one that does not exist", () => {
    expect(processCpuMs(process.pid)).toBeGreaterThanOrEqual(0);
    expect(processCpuMs(2 ** 30)).toBeUndefined();
  });
});

describe("WindowCpuReader", () => {
  it("gives the CPU used between the generator's window lines, only once the window has closed", () => {
    const r = new WindowCpuReader({ target: process.pid, nats: 2 ** 30 });
    r.mark("some other line");
    r.mark(WINDOW_START);
    expect(r.used()).toEqual({});
    r.mark(WINDOW_END);
    const used = r.used();
    expect(used.target).toBeGreaterThanOrEqual(0);
    // A process that is not there has no figure (rather than a wrong one).
    expect(used).not.toHaveProperty("nats");
  });

  it("ignores an end without a start", () => {
    const r = new WindowCpuReader({ target: process.pid });
    r.mark(WINDOW_END);
    expect(r.used()).toEqual({});
  });
});

describe("cpuTable", () => {
  const plan = { levels: [64], batchLevels: [64], chunks: [1], batchSize: 100, clientLevel: 64 };
  const run = (ops: number, cpu?: LoadResult["cpu"]): LoadResult => ({
    mode: "admit", subject: "bench.admit", concurrency: 64, opsPerRequest: 1, durationMs: 2000, count: ops * 2, rps: ops, ops,
    p50: 1, p90: 1, p99: 1, p999: 1, max: 1, mean: 1, errors: 0, timeouts: 0, errorReplies: 0, ...(cpu ? { cpu } : {}),
  });

  it("shows µs per op of each process and the cores they kept busy, medians of the runs", () => {
    // 20,000 ops/s for 2 s = 40,000 ops: 800 ms of sluice is 20 µs per op.
    const runs = [
      run(20_000, { generator: 880, target: 800, nats: 360 }),
      run(20_000, { generator: 1000, target: 1200, nats: 400 }),
      run(20_000, { generator: 1200, target: 1000, nats: 600 }),
    ];
    const text = cpuTable(allSeries(plan), [summarize("sluice", 64, runs)]);
    const row = text.split("\n").find((l) => l.includes("sluice admit"))!;
    // driven 25.0 (median of 20, 30, 25), nats 10.0, generator 25.0, total 65.0 (median of 51, 65, 70) µs; cores 1.30.
    expect(row.trim().split(/\s{2,}/)).toEqual(["sluice admit", "64", "25.0", "10.0", "25.0", "65.0", "1.30"]);
  });

  it("is empty where no run has CPU figures, and shows a dash for a process not read", () => {
    expect(cpuTable(allSeries(plan), [summarize("sluice", 64, [run(1000)])])).toBe("");
    const text = cpuTable(allSeries(plan), [summarize("rlf-redis", 64, [run(1000, { generator: 100, target: 60 })])]);
    const row = text.split("\n").find((l) => l.includes("RateLimiterRedis"))!;
    expect(row.trim().split(/\s{2,}/)).toEqual(["RateLimiterRedis ×2", "64", "30.0", "-", "50.0", "80.0", "0.08"]);
  });

  it("gives no total where a process the series drives was not read (no /proc)", () => {
    const text = cpuTable(allSeries(plan), [summarize("sluice", 64, [run(1000, { generator: 100 }), run(1000, { generator: 100, target: 60 })])]);
    const row = text.split("\n").find((l) => l.includes("sluice admit"))!;
    // Neither run read nats-server; one did not read sluice either.
    expect(row.trim().split(/\s{2,}/)).toEqual(["sluice admit", "64", "30.0", "-", "50.0", "-", "-"]);
  });
});
