import { describe, expect, it } from "vitest";
import { type ScopeNotice, scopeClone } from "../../machines/scope.js";
import { Admissions } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import { Restorer } from "../../src/persistence/restore.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema, reportSchema } from "../../src/protocol/schemas.js";
import { Passivator } from "../../src/registry/Passivator.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { StateWakes } from "../../src/registry/StateWakes.js";

const MINUTE = 60_000;
const START = Date.UTC(2026, 10, 23, 8);
const MIDNIGHT = Date.UTC(2026, 10, 24);
const BREAKER = { errorRate: 0.5, windowMs: 60_000, minRequests: 4, cooldownMs: 30_000, probes: 1 };
const DAILY = { limit: 1, period: "day", calendar: true };

function setup(doc: unknown, opts: { idleMs?: number; perRun?: number } = {}) {
  const clock = new ManualClock(START);
  const notices: { scope: string; type: string; at: number }[] = [];
  let wakes: StateWakes | undefined;
  const onNotice = (scope: string, n: ScopeNotice) => {
    notices.push({ scope, type: n.type, at: clock.now() });
    wakes?.notice(scope, n);
  };
  const registry = new ScopeRegistry({ policy: parsePolicy(doc), clock, onNotice });
  wakes = new StateWakes({ registry, clock, perRun: opts.perRun });
  const admissions = new Admissions({ registry, clock, random: () => 0 });
  if (opts.idleMs) new Passivator({ registry, clock, idleMs: opts.idleMs, sweepEveryMs: 1_000 }).start();
  const admit = (body: Record<string, unknown>) => admissions.admit(admitRequestSchema.parse({ model: "m", ...body })) as any;
  const report = (body: Record<string, unknown>) => admissions.report(reportSchema.parse(body));
  const of = (type: string) => notices.filter((n) => n.type === type);
  // The watch is taken once the actor's turn is over (a microtask).
  const turn = () => Promise.resolve();
  return { clock, registry, wakes, admit, report, notices, of, turn };
}

/** Spend key `k`'s daily budget of 1. */
function exhaust(s: ReturnType<typeof setup>, key: string) {
  const d = s.admit({ key, cost: 1 });
  s.report({ lease: d.lease, outcome: "ok", cost: 1 });
}

describe("state wakes - what time ends is announced when it ends", () => {
  it("an open breaker goes half-open at the end of its cooldown, announced then, with nobody calling", async () => {
    const s = setup({ scopes: { model: { default: { breaker: BREAKER } } } });
    for (let i = 0; i < 4; i++) s.report({ lease: s.admit({ key: "k" }).lease, outcome: "error" });
    expect(s.of("breaker.opened")).toEqual([{ scope: "model:m", type: "breaker.opened", at: START }]);
    await s.turn();
    expect(s.wakes.dueAt("model:m")).toBe(START + 30_000);
    s.clock.advance(29_999);
    expect(s.of("breaker.half_open")).toEqual([]);
    s.clock.advance(1);
    expect(s.of("breaker.half_open")).toEqual([{ scope: "model:m", type: "breaker.half_open", at: START + 30_000 }]);
    expect(s.registry.context("model:m")!.breaker).toMatchObject({ state: "halfOpen" });
    expect(s.wakes.size).toBe(0);
    // Half-open ends by a probe's outcome, not by time: nothing more is watched.
    const probe = s.admit({ key: "k" });
    s.report({ lease: probe.lease, outcome: "ok" });
    await s.turn();
    expect(s.of("breaker.closed")).toHaveLength(1);
    expect(s.wakes.size).toBe(0);
  });

  it("an exhausted budget resets at its period's end, announced then; one not exhausted waits for its scope's next event, as before", async () => {
    const s = setup({ scopes: { key: { default: { budget: DAILY } } } });
    exhaust(s, "spent");
    s.admit({ key: "half", cost: 0.5 });
    await s.turn();
    expect(s.of("budget.exhausted").map((n) => n.scope)).toEqual(["key:spent"]);
    expect(s.wakes.dueAt("key:spent")).toBe(MIDNIGHT);
    expect(s.wakes.dueAt("key:half")).toBeUndefined();
    s.clock.advance(MIDNIGHT - START - 1);
    expect(s.of("budget.reset")).toEqual([]);
    s.clock.advance(1);
    expect(s.of("budget.reset")).toEqual([{ scope: "key:spent", type: "budget.reset", at: MIDNIGHT }]);
    expect(s.admit({ key: "spent", cost: 1 }).decision).toBe("admit");
    // key:half's reset is announced when it is next used.
    s.admit({ key: "half", cost: 0.1 });
    expect(s.of("budget.reset").map((n) => n.scope)).toEqual(["key:spent", "key:half"]);
  });

  it("a sleeping scope is advanced where it lies, without an actor, and dropped when that leaves it at its defaults", async () => {
    const s = setup({ scopes: { key: { default: { rpm: 60, budget: DAILY } } } }, { idleMs: 10 * MINUTE });
    exhaust(s, "k");
    await s.turn();
    s.clock.advance(20 * MINUTE);
    expect(s.registry.peek("key:k")).toBeUndefined();
    expect(s.registry.isDormant("key:k")).toBe(true);
    s.clock.advance(MIDNIGHT - s.clock.now());
    expect(s.of("budget.reset")).toEqual([{ scope: "key:k", type: "budget.reset", at: MIDNIGHT }]);
    expect(s.registry.peek("key:k")).toBeUndefined(); // not woken
    expect(s.registry.isDormant("key:k")).toBe(false); // back at its defaults: dropped
  });

  it("a sleeping scope that still holds state after its reset is kept, advanced", async () => {
    // Two budgets: the daily one resets at midnight, the monthly one still holds what was spent.
    const s = setup({ scopes: { key: { default: { budget: [DAILY, { limit: 100, period: "month", calendar: true }] } } } }, { idleMs: 10 * MINUTE });
    exhaust(s, "k");
    await s.turn();
    s.clock.advance(MIDNIGHT - s.clock.now());
    expect(s.of("budget.reset").map((n) => n.scope)).toEqual(["key:k"]);
    const kept = s.registry.dormantContext("key:k")!;
    expect(kept.budgets.map((b) => b.used)).toEqual([0, 1]);
    expect(kept.budgetExhausted).toEqual([false, false]);
    expect(s.wakes.size).toBe(0);
  });

  it("scopes that fall due together are all ticked, a run of perRun at a time", async () => {
    const s = setup({ scopes: { key: { default: { budget: DAILY } } } }, { perRun: 100 });
    for (let i = 0; i < 250; i++) exhaust(s, `k${i}`);
    await s.turn();
    expect(s.wakes.size).toBe(250);
    s.clock.advance(MIDNIGHT - START);
    expect(s.of("budget.reset")).toHaveLength(250);
    expect(new Set(s.of("budget.reset").map((n) => n.at))).toEqual(new Set([MIDNIGHT]));
    expect(s.wakes.ticked).toBe(250);
    expect(s.wakes.size).toBe(0);
  });

  it("a monthly reset further off than a timer reaches is still announced on time", async () => {
    const s = setup({ scopes: { key: { default: { budget: { limit: 1, period: "month", calendar: true } } } } });
    exhaust(s, "k");
    await s.turn();
    const dec1 = Date.UTC(2026, 11, 1);
    expect(s.wakes.dueAt("key:k")).toBe(dec1);
    s.clock.advance(dec1 - START - 1);
    expect(s.of("budget.reset")).toEqual([]);
    s.clock.advance(1);
    expect(s.of("budget.reset")).toEqual([{ scope: "key:k", type: "budget.reset", at: dec1 }]);
  });

  it("a scope reset by an operator before its time is ticked to no effect: nothing announced twice", async () => {
    const s = setup({ scopes: { model: { default: { breaker: BREAKER } } } });
    for (let i = 0; i < 4; i++) s.report({ lease: s.admit({ key: "k" }).lease, outcome: "error" });
    await s.turn();
    s.registry.get("model:m").send({ type: "reset", what: "breaker", now: s.clock.now() });
    expect(s.of("breaker.closed")).toHaveLength(1);
    s.clock.advance(30_000);
    expect(s.of("breaker.half_open")).toEqual([]);
    expect(s.wakes.size).toBe(0);
  });

  it("a restored scope in an awaited state is watched once its replay is over", () => {
    const s = setup({ scopes: { key: { default: { budget: DAILY } } } });
    exhaust(s, "k");
    const ctx = scopeClone(s.registry.context("key:k")!);

    const clock = new ManualClock(START + MINUTE);
    const notices: string[] = [];
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { budget: DAILY } } } }), clock, onNotice: (scope, n) => notices.push(`${scope} ${n.type}`) });
    const wakes = new StateWakes({ registry, clock });
    const restorer = new Restorer(registry, clock.now(), (scope, c) => wakes.watch(scope, c));
    restorer.load([{ seq: 1, scope: "key:k", ctx }]);
    expect(wakes.size).toBe(0); // not before the replay
    restorer.finish();
    expect(wakes.dueAt("key:k")).toBe(MIDNIGHT);
    clock.advance(MIDNIGHT - clock.now());
    expect(notices).toEqual(["key:k budget.reset"]);
    expect(registry.isDormant("key:k")).toBe(false);
  });

  it("a policy change that moves the end of a period moves the tick with it (rewatch)", async () => {
    const s = setup({ scopes: { key: { default: { budget: DAILY } } } });
    exhaust(s, "k");
    await s.turn();
    expect(s.wakes.dueAt("key:k")).toBe(MIDNIGHT);
    s.registry.setPolicy(parsePolicy({ scopes: { key: { default: { budget: { limit: 1, period: "hour", calendar: true } } } } }));
    s.wakes.rewatch();
    const nineOClock = START + 60 * MINUTE;
    expect(s.wakes.dueAt("key:k")).toBe(nineOClock);
    s.clock.advance(60 * MINUTE);
    expect(s.of("budget.reset")).toEqual([{ scope: "key:k", type: "budget.reset", at: nineOClock }]);
  });

  it("stop() forgets every scope and fires nothing more", async () => {
    const s = setup({ scopes: { key: { default: { budget: DAILY } } } });
    exhaust(s, "k");
    await s.turn();
    s.wakes.stop();
    s.clock.advance(MIDNIGHT - START);
    expect(s.of("budget.reset")).toEqual([]);
    expect(s.wakes.size).toBe(0);
  });
});

describe("sleeping scopes under a policy changed since they fell asleep", () => {
  const OLD = { scopes: { key: { default: { budget: { limit: 5, periodMs: 20_000 } } } } };
  const NEW = { scopes: { key: { default: { budget: { limit: 5, periodMs: 120_000 } } } } };

  /** A snapshot of key:k with its rolling budget spent, taken under OLD. */
  function spentUnderOld() {
    const s = setup(OLD);
    exhaust5(s);
    return JSON.parse(JSON.stringify(s.registry.context("key:k")!));
  }
  function exhaust5(s: ReturnType<typeof setup>) {
    const d = s.admit({ key: "k", cost: 5 });
    s.report({ lease: d.lease, outcome: "ok", cost: 5 });
  }

  it("a restart under a longer period: restored, watched, ticked and reclaimed under the new period, its usage kept until then", async () => {
    const ctx = spentUnderOld();
    // Restarted 1.5 s later, within the old period (20 s); its end then passes while the scope sleeps.
    const clock = new ManualClock(START + 1_500);
    const notices: string[] = [];
    let wakes: StateWakes | undefined;
    const registry = new ScopeRegistry({ policy: parsePolicy(NEW), clock, onNotice: (scope, n) => notices.push(`${scope} ${n.type} ${clock.now() - START}`) });
    const changed: string[] = [];
    wakes = new StateWakes({ registry, clock, changed: (s) => changed.push(s) });
    const restorer = new Restorer(registry, clock.now(), (scope, c) => wakes!.watch(scope, c));
    restorer.load([{ seq: 1, scope: "key:k", ctx }]);
    restorer.finish();
    expect(restorer.skipped).toBe(0); // not taken for back at its defaults
    expect(wakes.dueAt("key:k")).toBe(START + 120_000);
    // The dormant walk does not drop it either.
    clock.advance(58_500);
    expect(registry.reclaimDormant(10, clock.now()).reclaimed).toBe(0);
    expect(notices).toEqual([]);
    const admissions = new Admissions({ registry, clock, random: () => 0 });
    expect(admissions.admit(admitRequestSchema.parse({ key: "k", model: "m", cost: 1 }))).toMatchObject({ decision: "reject", reason: "budget_exhausted" });
    admissions.close();
    clock.advance(START + 120_000 - clock.now());
    expect(notices).toEqual(["key:k budget.reset 120000"]);
    expect(changed).toEqual(["key:k"]); // marked for the next snapshot
  });

  it("asleep through admin.policy.set: its tick is timed and made under the new period", async () => {
    const s = setup(OLD, { idleMs: 5_000 });
    exhaust5(s);
    await s.turn();
    s.clock.advance(10_000);
    expect(s.registry.peek("key:k")).toBeUndefined();
    expect(s.registry.isDormant("key:k")).toBe(true);
    s.registry.setPolicy(parsePolicy(NEW));
    s.wakes.rewatch();
    expect(s.wakes.dueAt("key:k")).toBe(START + 120_000);
    s.clock.advance(20_000); // the old period's end passes
    expect(s.of("budget.reset")).toEqual([]);
    expect(s.registry.isDormant("key:k")).toBe(true);
    s.clock.advance(START + 120_000 - s.clock.now());
    expect(s.of("budget.reset").map((n) => n.at)).toEqual([START + 120_000]);
  });
});
