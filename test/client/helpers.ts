/** A nats-server and an in-process sluice per test file, with a fresh prefix and a manual clock per test. */
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";

export interface Harness {
  server: NatsServerHandle;
  nc: NatsConnection;
  /** Start a service under a fresh prefix; the previous one is stopped. */
  start(policy: unknown): Promise<{ service: SluiceService; prefix: string; clock: ManualClock }>;
  /** Stop the current service. */
  stopService(): Promise<void>;
  close(): Promise<void>;
}

let files = 0;

export async function harness(): Promise<Harness> {
  const server = await startNatsServer({ jetstream: false });
  const nc = await connect({ servers: server.url });
  const tag = `c${process.pid}x${++files}`;
  let seq = 0;
  let service: SluiceService | undefined;
  const h: Harness = {
    server,
    nc,
    async start(policy) {
      await h.stopService();
      const clock = new ManualClock(Date.UTC(2026, 10, 23, 12));
      const prefix = `${tag}s${++seq}`;
      // random 0: jitter at its floor, so retry times are exact.
      service = await SluiceService.start({ nc, policy: parsePolicy(policy), prefix, clock, random: () => 0 });
      return { service, prefix, clock };
    },
    async stopService() {
      await service?.stop();
      service = undefined;
    },
    async close() {
      await h.stopService();
      await nc.drain();
      await server.stop();
    },
  };
  return h;
}

/** Every message on `subject`, with its body parsed, until `stop()`. */
export function collect(nc: NatsConnection, subject: string): { messages: { subject: string; body: any }[]; stop: () => void } {
  const messages: { subject: string; body: any }[] = [];
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      let body: unknown;
      try {
        body = m.json();
      } catch {
        body = m.string();
      }
      messages.push({ subject: m.subject, body });
    },
  });
  return { messages, stop: () => sub.unsubscribe() };
}

/** Poll `pred` every 5 ms, up to `ms`. */
export async function until(pred: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Let messages already sent arrive: a round trip to the server, then a short pause for callbacks. */
export async function settle(nc: NatsConnection): Promise<void> {
  await nc.flush();
  await new Promise((r) => setTimeout(r, 30));
}
