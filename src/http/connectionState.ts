/**
 * Whether the NATS connection is up, followed from its status stream: down from
 * a `disconnect` until the `reconnect`, and for good once it closes or drains.
 */
import type { NatsConnection } from "@nats-io/transport-node";

/** A followed connection. */
export interface ConnectionState {
  /** Whether the connection is up now. */
  connected(): boolean;
  /** Stop following (ends the status iterator). */
  stop(): void;
}

/** Follow `nc`'s status. */
export function watchConnection(nc: NatsConnection): ConnectionState {
  let up = !nc.isClosed();
  let stopped = false;
  const statuses = nc.status();
  void (async () => {
    try {
      for await (const s of statuses) {
        if (stopped) break;
        if (s.type === "disconnect" || s.type === "close") up = false;
        else if (s.type === "reconnect") up = true;
      }
    } catch {
      // The iterator ends with the connection; closed() below has the last word.
    }
  })();
  return {
    connected: () => up && !nc.isClosed() && !nc.isDraining(),
    stop: () => {
      stopped = true;
      // The client's status iterator has stop(); the public type is only AsyncIterable.
      (statuses as { stop?: () => void }).stop?.();
    },
  };
}
