import { createServer } from "node:net";
import { type StatelyInspectionEvent, createWebSocketReceiver } from "@statelyai/inspect";
import { createActor } from "xstate";
import { afterEach, describe, expect, it } from "vitest";
import { scopeMachine } from "../../machines/scopeMachine.js";
import { resolveLimits } from "../../machines/policy.js";
import { InspectPortInUseError, type WebSocketInspection, startWebSocketInspection } from "../../src/inspection/wsInspector.js";
import { freePort } from "../helpers/natsServer.js";

let inspection: WebSocketInspection | undefined;
afterEach(() => {
  inspection?.stop();
  inspection = undefined;
});

describe("inspection - Stately WebSocket", () => {
  it("relays a scope actor's events to a connected inspector UI (a WebSocket receiver)", async () => {
    const port = await freePort();
    inspection = await startWebSocketInspection({ port });
    expect(inspection.url).toBe(`http://localhost:${port}`);
    // The relay page that embeds the Stately inspector.
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toContain(`ws://localhost:${port}`);

    const received: StatelyInspectionEvent[] = [];
    const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` });
    const sub = receiver.subscribe((e) => received.push(e));

    const actor = createActor(scopeMachine, {
      id: "key:acme",
      input: { scope: "key:acme", limits: resolveLimits({ concurrency: 2 }), now: 0 },
      inspect: inspection.inspect,
    });
    actor.start();
    actor.send({ type: "admit", demand: { tokens: 0, cost: 0 }, held: true, now: 1 });

    await expect
      .poll(() => received.filter((e) => e.type === "@xstate.snapshot" && (e.snapshot as { context?: { held?: number } }).context?.held === 1).length, {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    expect(received.some((e) => e.type === "@xstate.actor" && e.sessionId !== undefined)).toBe(true);
    sub.unsubscribe();
    actor.stop();
  });

  it("refuses a port in use with a named error instead of crashing the process", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, r));
    const port = (taken.address() as { port: number }).port;
    await expect(startWebSocketInspection({ port })).rejects.toBeInstanceOf(InspectPortInUseError);
    await new Promise((r) => taken.close(r));
  });
});
