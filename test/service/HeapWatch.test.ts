import { describe, expect, it } from "vitest";
import { Admissions } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { HeapWatch, oldGenerationFigures } from "../../src/service/HeapWatch.js";

const MB = 2 ** 20;

function recordingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (_obj: unknown, msg?: string) => lines.push(`${level} ${msg}`);
  return { lines, logger: { warn: log("warn"), info: log("info"), debug: log("debug"), error: log("error") } as never };
}

describe("HeapWatch", () => {
  it("is short from 85% of the old generation's ceiling in use until back under 80%, and says so once each way", () => {
    let used = 500 * MB;
    const { lines, logger } = recordingLogger();
    const watch = new HeapWatch({ logger, figures: () => ({ used, ceiling: 1000 * MB }) });
    expect(watch.sample()).toBe(false);
    used = 849 * MB;
    expect(watch.sample()).toBe(false);
    used = 850 * MB;
    expect(watch.sample()).toBe(true);
    // Between the two marks it stays as it was.
    used = 820 * MB;
    expect(watch.sample()).toBe(true);
    expect(watch.sample()).toBe(true);
    used = 799 * MB;
    expect(watch.sample()).toBe(false);
    used = 820 * MB;
    expect(watch.sample()).toBe(false);
    expect(lines).toEqual(["warn memory is short: admissions that need a new scope or name an id are refused until it frees", "info memory is no longer short"]);
  });
});

describe("the old generation's figures", () => {
  it("count the heap outside the young generation against a ceiling under V8's whole-heap limit", async () => {
    const { getHeapStatistics } = await import("node:v8");
    const f = oldGenerationFigures();
    const all = getHeapStatistics();
    expect(f.used).toBeGreaterThan(0);
    expect(f.used).toBeLessThanOrEqual(all.used_heap_size);
    expect(f.ceiling).toBeLessThan(all.heap_size_limit);
    expect(f.ceiling).toBeGreaterThan(all.heap_size_limit / 2);
  });
});

describe("admissions while memory is short", () => {
  it("refuses those that would bring a scope to life or remember an id, creating nothing, and serves the rest", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 100, budget: { limit: 5 } } } } }), clock });
    let short = false;
    const admissions = new Admissions({ registry, clock, random: () => 0, memoryShort: () => short });
    const admit = (body: Record<string, unknown>) => admissions.admit(admitRequestSchema.parse({ model: "m", cost: 1, ...body })) as { decision: string };
    expect(admit({ key: "a", id: "r1" }).decision).toBe("admit");
    registry.remove("key:b", true);
    expect(admit({ key: "b" }).decision).toBe("admit");
    registry.remove("key:b", true);
    short = true;
    // A new key, a sleeping one, and an id to remember: refused, and nothing changed.
    expect(() => admit({ key: "c" })).toThrow(/memory is short/);
    expect(() => admit({ key: "b" })).toThrow(/memory is short/);
    expect(() => admit({ key: "a", id: "r2" })).toThrow(/memory is short/);
    expect(registry.peek("key:c")).toBeUndefined();
    expect(registry.isDormant("key:c")).toBe(false);
    expect(registry.isDormant("key:b")).toBe(true);
    expect(registry.context("key:a")!.budgets[0]).toMatchObject({ reserved: 1 });
    // Live scopes without an id are served; a repeated id gets its first decision.
    expect(admit({ key: "a" }).decision).toBe("admit");
    expect(registry.context("key:a")!.budgets[0]).toMatchObject({ reserved: 2 });
    expect(admit({ key: "a", id: "r1" })).toStrictEqual(admit({ key: "a", id: "r1" }));
    expect(registry.context("key:a")!.budgets[0]).toMatchObject({ reserved: 2 });
    short = false;
    expect(admit({ key: "c" }).decision).toBe("admit");
  });
});
