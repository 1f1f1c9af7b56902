import { type NatsConnection, connect } from "@nats-io/transport-node";
import type { InspectionEvent } from "xstate";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { type InspectionMessage, createNatsInspector } from "../../src/inspection/natsInspector.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { encodeSubjectToken } from "../../src/protocol/subjectToken.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer();
let service: SluiceService | undefined;
let seq = 0;

afterEach(async () => {
  await service?.stop();
  service = undefined;
});

const settle = () => new Promise((r) => setTimeout(r, 50));

/** A synthetic inspection event of the actor `id`. */
function inspectionEvent(id: string, event: Record<string, unknown> = { type: "tick", now: 0 }): InspectionEvent {
  return { type: "@xstate.event", rootId: "x", actorRef: { id } as never, sourceRef: undefined, event: event as never };
}

describe("inspection - over NATS", () => {
  it("an admission publishes the scope actors' @xstate.event and @xstate.snapshot on inspect.events.<kind>.<value>", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 12));
    const prefix = `i${++seq}`;
    const inspector = createNatsInspector({ nc: nats.nc, prefix, clock });
    service = await SluiceService.start({
      nc: nats.nc,
      prefix,
      clock,
      policy: parsePolicy({ scopes: { key: { default: { rpm: 10, concurrency: 2 } } } }),
      inspect: inspector.inspect,
    });
    const key = "acme.prod"; // a dot: the subject token is encoded
    const seen: { subject: string; body: InspectionMessage }[] = [];
    const sub = nats.nc.subscribe(`${prefix}.inspect.events.>`, { callback: (_e, m) => void seen.push({ subject: m.subject, body: m.json() }) });
    await nats.nc.flush();

    const d = (await nats.nc.request(`${prefix}.admit`, JSON.stringify({ key, model: "gpt-4o" }))).json<any>();
    expect(d.decision).toBe("admit");
    await nats.nc.flush();
    await settle();
    sub.unsubscribe();

    const keySubject = `${prefix}.inspect.events.key.${encodeSubjectToken(key)}`;
    expect(keySubject).toBe(`${prefix}.inspect.events.key.acme%2Eprod`);
    const forKey = seen.filter((m) => m.subject === keySubject).map((m) => m.body);
    for (const body of forKey) {
      expect(body.scope).toBe(`key:${key}`);
      expect(body.ts).toBe(clock.now());
    }
    // The actor's start, then the admission's commit.
    const events = forKey.filter((b) => b.type === "@xstate.event");
    expect(events.map((b) => (b.event as { type: string }).type)).toEqual(["xstate.init", "admit"]);
    expect(events[1]!.event).toMatchObject({ type: "admit", held: true, now: clock.now() });

    const snapshots = forKey.filter((b) => b.type === "@xstate.snapshot");
    expect(snapshots.length).toBeGreaterThanOrEqual(2);
    const last = snapshots.at(-1)!;
    expect(last.snapshot!.value).toBe("closed");
    expect(last.snapshot!.context).toMatchObject({ scope: `key:${key}`, held: 1 });
    expect((last.event as { type: string }).type).toBe("admit");

    // The model scope has its own subject.
    expect(seen.some((m) => m.subject === `${prefix}.inspect.events.model.gpt-4o` && m.body.type === "@xstate.snapshot")).toBe(true);
    expect(inspector.stats()).toMatchObject({ dropped: 0 });
    expect(inspector.stats().published).toBe(seen.length);
  });

  it("drops, never throws, on a closed connection, over the rate cap and on an event it cannot serialise", async () => {
    const own = await connect({ servers: nats.server.url });
    const capped = createNatsInspector({ nc: own, prefix: "cap", maxPerSecond: 5 });
    for (let i = 0; i < 20; i++) capped.inspect(inspectionEvent("key:a"));
    expect(capped.stats().published).toBeLessThanOrEqual(6);
    expect(capped.stats().published + capped.stats().dropped).toBe(20);

    const cyclic: Record<string, unknown> = { type: "tick" };
    cyclic.self = cyclic;
    const loose = createNatsInspector({ nc: own, prefix: "loose" });
    expect(() => loose.inspect(inspectionEvent("key:a", cyclic))).not.toThrow();
    expect(loose.stats()).toEqual({ published: 0, dropped: 1 });
    // Not a scope actor (no kind:value id): ignored, not counted.
    loose.inspect(inspectionEvent("scope"));
    expect(loose.stats()).toEqual({ published: 0, dropped: 1 });

    await own.close();
    expect(() => loose.inspect(inspectionEvent("key:a"))).not.toThrow();
    expect(loose.stats()).toEqual({ published: 0, dropped: 2 });
  });
});
