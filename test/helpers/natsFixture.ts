import { type NatsConnection, connect } from "@nats-io/transport-node";
import { afterAll, beforeAll } from "vitest";
import { type NatsServerHandle, type StartNatsServerOptions, startNatsServer } from "./natsServer.js";

/** A nats-server of the test file's own and a connection to it, for the whole file. */
export interface NatsFixture {
  readonly server: NatsServerHandle;
  readonly nc: NatsConnection;
}

/**
 * Start a nats-server (on a free port; no JetStream unless asked) and connect to
 * it before the file's tests; drain and stop both after them.
 */
export function useNatsServer(opts: StartNatsServerOptions = { jetstream: false }): NatsFixture {
  let server: NatsServerHandle | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    server = await startNatsServer(opts);
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.drain();
    await server?.stop();
  });
  return {
    get server() {
      if (!server) throw new Error("the nats-server fixture is used before beforeAll ran");
      return server;
    },
    get nc() {
      if (!nc) throw new Error("the nats-server fixture is used before beforeAll ran");
      return nc;
    },
  };
}
