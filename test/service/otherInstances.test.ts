import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { otherInstances } from "../../src/service/otherInstances.js";
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
