/**
 * A scope actor writes its context in place, and a snapshot round's writes span later
 * turns: each snapshot must still hold the scope exactly as it was when the round was
 * taken (the journal sequence it is stored with says what it includes).
 */
import { describe, expect, it } from "vitest";
import { Admissions } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import { Persistence } from "../../src/persistence/Persistence.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer({ jetstream: true });

describe("durability - snapshot rounds", () => {
  it("store each scope as it was when the round was taken, though its actor changes while the round is written", { timeout: 30_000 }, async () => {
    const persistence = await Persistence.open(nats.nc, "snaptake");
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 12));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 600, concurrency: 50 } } } }), clock });
    const admissions = new Admissions({ registry, clock, changed: persistence.markDirty });
    persistence.start(registry, admissions, clock);
    const admit = (key = "k") => admissions.admit(admitRequestSchema.parse({ key, model: "m" }));

    // Rounds are written some scopes at a time: enough others first that `key:k` is written after a turn or more.
    for (let i = 0; i < 200; i++) admit(`other-${i}`);
    admit();
    admit();
    const round = persistence.snapshot();
    const taken = JSON.parse(JSON.stringify(registry.context("key:k")));
    expect(taken.held).toBe(2);
    // The actor moves on before the round's writes are done.
    clock.advance(10);
    for (let i = 0; i < 3; i++) admit();
    expect(registry.context("key:k")!.held).toBe(5);
    await round;

    const stored = (await persistence.snapshots.loadAll()).find((s) => s.scope === "key:k");
    expect(stored?.ctx).toEqual(taken);
    await persistence.stop();
    admissions.close();
  });
});
