import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { ManualClock } from "../../src/clock.js";
import type { Logger } from "../../src/log.js";
import { type OtherInstance, TwinWatch, otherInstances, waitUntilAlone } from "../../src/service/otherInstances.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer();

describe("other instances on the prefix (micro discovery)", () => {
  it("finds a sluice serving the same prefix, and none serving another, or none at all", async () => {
    expect(await otherInstances(nats.nc, "oi")).toEqual([]); // no service named sluice: NATS says so at once
    const a = await SluiceService.start({ nc: nats.nc, policy: parsePolicy({ scopes: {} }), prefix: "oi" });
    const b = await SluiceService.start({ nc: nats.nc, policy: parsePolicy({ scopes: {} }), prefix: "elsewhere" });
    const found = await otherInstances(nats.nc, "oi");
    expect(found).toHaveLength(1);
    expect(found[0]!.id).toMatch(/\S+/);
    expect(found[0]!.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(await otherInstances(nats.nc, "nobody")).toEqual([]);
    await a.stop();
    expect(await otherInstances(nats.nc, "oi")).toEqual([]);
    await b.stop();
  });
});

describe("a twin started later (TwinWatch)", () => {
  it("each instance on a prefix finds the other and says so as an error, again only after repeatMs; none once it stops", async () => {
    const policy = parsePolicy({ scopes: {} });
    const a = await SluiceService.start({ nc: nats.nc, policy, prefix: "tw" });
    const b = await SluiceService.start({ nc: nats.nc, policy, prefix: "tw" }); // the library does not check; npm start does
    const clock = new ManualClock();
    const errors: { others: OtherInstance[] }[] = [];
    const logger = { error: (o: { others: OtherInstance[] }) => errors.push(o), warn: () => undefined } as unknown as Logger;
    const watchA = new TwinWatch({ nc: nats.nc, prefix: "tw", ownId: () => a.serviceId, logger, clock, repeatMs: 60_000 });
    const watchB = new TwinWatch({ nc: nats.nc, prefix: "tw", ownId: () => b.serviceId, logger, clock, repeatMs: 60_000 });
    expect((await watchA.check()).map((o) => o.id)).toEqual([b.serviceId]);
    expect((await watchB.check()).map((o) => o.id)).toEqual([a.serviceId]);
    expect(errors.map((e) => e.others.map((o) => o.id))).toEqual([[b.serviceId], [a.serviceId]]);
    await watchA.check();
    expect(errors).toHaveLength(2); // the same twin: not said again yet
    clock.advance(60_000);
    await watchA.check();
    expect(errors).toHaveLength(3);
    await b.stop();
    expect(await watchA.check()).toEqual([]);
    expect(watchA.twins).toEqual([]);
    await a.stop();
  });
});

describe("a standby (waitUntilAlone)", () => {
  it("waits while a sluice serves the prefix, returns once it has stopped, and gives up when told to stop", async () => {
    const a = await SluiceService.start({ nc: nats.nc, policy: parsePolicy({ scopes: {} }), prefix: "sb" });
    let looks = 0;
    let stopped = false;
    const waiting = waitUntilAlone(nats.nc, "sb", { pollMs: 20, quietPolls: 2, stopped: () => (looks++, stopped) });
    let done = false;
    void waiting.then(() => (done = true));
    await expect.poll(() => looks, { timeout: 5_000 }).toBeGreaterThan(3);
    expect(done).toBe(false); // still serving: still waiting
    await a.stop();
    expect(await waiting).toBe(true);

    const b = await SluiceService.start({ nc: nats.nc, policy: parsePolicy({ scopes: {} }), prefix: "sb" });
    const giving = waitUntilAlone(nats.nc, "sb", { pollMs: 20, stopped: () => stopped });
    stopped = true;
    expect(await giving).toBe(false);
    await b.stop();
  });
});
