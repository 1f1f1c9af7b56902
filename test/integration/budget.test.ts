import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer();

describe("budgets - many callers, one team budget", () => {
  it("64 concurrent callers stop at the limit and the final usage is exactly the sum of reported costs", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 9));
    const limit = 10;
    const service = await SluiceService.start({
      nc: nats.nc,
      prefix: "bud",
      clock,
      random: () => 0,
      policy: parsePolicy({ scopes: { key: { default: { parents: { team: "search" } } }, team: { default: { budget: { limit, period: "month", calendar: true } } } } }),
    });
    // Binary-exact amounts, so that "exactly" does not depend on the order floats are added in.
    const actuals = [0.125, 0.25, 0.375];
    let reportedSum = 0;
    let admitted = 0;
    let refusedExhausted = 0;
    const caller = async (n: number) => {
      for (let i = 0; ; i++) {
        const d = (await nats.nc.request("bud.admit", JSON.stringify({ key: `k${n}`, model: "m", cost: 0.25 }))).json<any>();
        if (d.decision === "reject") {
          expect(d).toMatchObject({ reason: "budget_exhausted", scope: "team:search" });
          expect(d.retryAfterMs).toBe(Date.UTC(2026, 11, 1) - clock.now());
          refusedExhausted++;
          return;
        }
        admitted++;
        const cost = actuals[(n + i) % actuals.length]!;
        const ack = (await nats.nc.request("bud.report", JSON.stringify({ lease: d.lease, outcome: "ok", cost }))).json<any>();
        expect(ack).toEqual({ ok: true, status: "applied" });
        reportedSum += cost;
      }
    };
    await Promise.all(Array.from({ length: 64 }, (_, n) => caller(n)));
    const view = (await nats.nc.request("bud.inspect", JSON.stringify({ scope: "team:search" }))).json<any>().view;
    expect(refusedExhausted).toBe(64);
    expect(view.budget.reserved).toBe(0);
    expect(view.budget.used).toBe(reportedSum);
    // Settled spend passes the limit by no more than reports exceeding their estimates (0.125 each at most, 63 in flight).
    expect(view.budget.used).toBeLessThanOrEqual(limit + 0.125 * 63);
    expect(admitted).toBeGreaterThanOrEqual(limit / 0.375);
    await service.stop();
  });
});
