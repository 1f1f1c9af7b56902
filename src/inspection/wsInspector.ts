/**
 * XState inspection in the Stately inspector (`SLUICE_INSPECT=ws`), with
 * `@statelyai/inspect`: sluice starts the package's relay server (an HTTP page
 * that embeds the Stately inspector UI, plus a WebSocket) and connects
 * `createWebSocketInspector` to it. Open the page in a browser on the same
 * machine (it connects to `ws://localhost:<port>`), then send traffic: each
 * scope actor shows up with its state, context and events.
 *
 * A development tool: every event of every scope actor is serialised and sent,
 * and the relay keeps the last 200 messages for late browsers.
 */
import { createServer } from "node:net";
import { createWebSocketInspector } from "@statelyai/inspect";
import { createInspectorServer } from "@statelyai/inspect/server";
import type { InspectionEvent } from "xstate";

/** Default port of the relay (the Stately inspector's own default). */
export const DEFAULT_INSPECT_WS_PORT = 8080;

/** Options of {@link startWebSocketInspection}. */
export interface WebSocketInspectionOptions {
  /** Port of the relay page and WebSocket. Default 8080. */
  port?: number;
}

/** A running WebSocket inspection. */
export interface WebSocketInspection {
  /** The page to open: `http://localhost:<port>`. */
  readonly url: string;
  /** Give this to the service (`inspect` option). */
  inspect: (event: InspectionEvent) => void;
  /** Close the WebSocket and the relay. */
  stop(): void;
}

/** Error of a relay port that is taken. */
export class InspectPortInUseError extends Error {
  constructor(readonly port: number, options?: { cause?: unknown }) {
    super(`port ${port} for the XState inspector is in use`, options);
    this.name = "InspectPortInUseError";
  }
}

/**
 * Start the relay and the inspector. Rejects with {@link InspectPortInUseError}
 * when the port is taken: the relay's own listener has no error handler, so the
 * port is tried first.
 */
export async function startWebSocketInspection(opts: WebSocketInspectionOptions = {}): Promise<WebSocketInspection> {
  const port = opts.port ?? DEFAULT_INSPECT_WS_PORT;
  await assertPortFree(port);
  const relay = createInspectorServer({ port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://127.0.0.1:${port}` });
  return {
    url: `http://localhost:${port}`,
    inspect: (event) => {
      try {
        inspector.inspect.next?.(event);
      } catch {
        // Inspection must never break an actor.
      }
    },
    stop: () => {
      inspector.stop();
      relay.stop();
    },
  };
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (cause) => reject(new InspectPortInUseError(port, { cause })));
    probe.listen(port, () => probe.close(() => resolve()));
  });
}
