/**
 * The code of the decision-event thread (see DecisionEventThread.ts): a NATS
 * connection of its own that publishes the events the service hands over (their
 * JSON already made), batch by batch, in the order given.
 */
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "@nats-io/transport-node";
import { loadConfig } from "../config.js";
import { silentLogger } from "../log.js";
import { FramePublisher } from "../transport/FramePublisher.js";
import type { EventThreadReply, EventThreadRequest } from "./DecisionEventThread.js";

const port = parentPort!;
const { servers, name } = workerData as { servers: string[]; name: string };
const reply = (m: EventThreadReply): void => port.postMessage(m);
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

try {
  // The same credentials and TLS settings as the service's own connection: the thread gets a copy of its environment.
  const nc = await connect({ servers, name, maxReconnectAttempts: -1, ...loadConfig(process.env).natsOptions });
  const out = new FramePublisher(nc, silentLogger);
  port.on("message", (m: EventThreadRequest) => {
    if (m.type === "events") {
      const batch = m.batch;
      for (let i = 0; i < batch.length; i += 2) {
        try {
          out.publish(batch[i]!, batch[i + 1]!);
        } catch {
          // A closed or draining connection: the event is lost, as it would be on the service's own.
        }
      }
      // Handed to the connection now, so that "done" is said after the client's own flush (a microtask this
      // queues): once the service hears it, these events are written, and it may publish the next small turn's
      // on its own connection.
      out.flush();
      queueMicrotask(() => reply({ type: "done", count: batch.length / 2 }));
    } else {
      nc.drain().then(
        () => reply({ type: "stopped" }),
        (err: unknown) => reply({ type: "stopped", error: messageOf(err) }),
      );
    }
  });
  reply({ type: "ready" });
} catch (err) {
  reply({ type: "failed", message: messageOf(err) });
}
