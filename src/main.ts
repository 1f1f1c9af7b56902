/**
 * `npm start`: run sluice. Connects to NATS_URL, or to a nats-server on
 * 127.0.0.1:4222, or starts a local one; serves until SIGTERM/SIGINT, then
 * answers `unavailable`, drains NATS, stops the actors and exits 0.
 */
import { readFileSync } from "node:fs";
import { connect } from "@nats-io/transport-node";
import type { InspectionEvent } from "xstate";
import { ConfigError, loadConfig } from "./config.js";
import { startHttpServer, type SluiceHttpServer } from "./http/httpServer.js";
import { SluiceMetrics } from "./http/metrics.js";
import { createNatsInspector } from "./inspection/natsInspector.js";
import { InspectPortInUseError, startWebSocketInspection, type WebSocketInspection } from "./inspection/wsInspector.js";
import { createLogger } from "./log.js";
import { isSluiceRequestError } from "./protocol/errors.js";
import { EMPTY_POLICY, parsePolicy } from "./protocol/policySchema.js";
import { DecisionEventThread } from "./service/DecisionEventThread.js";
import { SluiceService } from "./service/SluiceService.js";
import { NatsServerMissingError, ensureNats } from "./transport/localNats.js";
import { TwinWatch, otherInstances, waitUntilAlone } from "./service/otherInstances.js";
import { FramePublisher } from "./transport/FramePublisher.js";
import { permissionDenied } from "./transport/permissionDenied.js";
import { publishEvent } from "./transport/messages.js";

function fail(line: string, code: number): never {
  // One clear line for a human at a terminal; the structured log has the rest.
  process.stderr.write(`sluice: ${line}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message, 2);
    throw e;
  }
  const logger = createLogger({ level: config.logLevel });

  let policy = EMPTY_POLICY;
  if (config.policyFile) {
    let text: string;
    try {
      text = readFileSync(config.policyFile, "utf8");
    } catch (e) {
      fail(`SLUICE_POLICY=${config.policyFile}: cannot read (${(e as Error).message})`, 2);
    }
    try {
      policy = parsePolicy(JSON.parse(text));
    } catch (e) {
      if (e instanceof SyntaxError) fail(`SLUICE_POLICY=${config.policyFile}: not valid JSON (${e.message})`, 2);
      if (isSluiceRequestError(e)) fail(`SLUICE_POLICY=${config.policyFile}: ${e.message}`, 2);
      throw e;
    }
  }

  let local;
  try {
    local = await ensureNats({ configured: config.natsUrl, logger });
  } catch (e) {
    if (e instanceof NatsServerMissingError) fail(e.message, 1);
    throw e;
  }

  const servers = local.servers.split(",").map((s) => s.trim());
  const nc = await connect({
    servers,
    name: "sluice",
    // Survive NATS restarts: the client's default gives up after 10 attempts.
    maxReconnectAttempts: -1,
    ...config.natsOptions,
  });
  logger.info({ server: nc.getServer(), prefix: config.prefix }, "connected to NATS");
  let others = await otherInstances(nc, config.prefix);
  if (others.length > 0 && config.standby) {
    logger.info({ others, prefix: config.prefix }, "standby: another sluice serves this prefix; waiting until it stops (SLUICE_STANDBY=on)");
    // Told to stop while waiting: leave at once, cleanly.
    let stop = false;
    const leave = () => (stop = true);
    process.once("SIGTERM", leave).once("SIGINT", leave);
    const alone = await waitUntilAlone(nc, config.prefix, { stopped: () => stop });
    process.off("SIGTERM", leave).off("SIGINT", leave);
    if (!alone) {
      logger.info("standby: stopped before taking over");
      await nc.close();
      await local.stop();
      logger.flush();
      process.exit(0);
    }
    logger.info({ prefix: config.prefix }, "standby: the other sluice has stopped; taking over");
    others = [];
  }
  if (others.length > 0) {
    await nc.close();
    await local.stop();
    fail(
      `another sluice already serves SLUICE_PREFIX=${config.prefix} on this NATS (service ${others.map((o) => o.id).join(", ")}): ` +
        "two would split the requests and each enforce every limit, admitting up to twice what the policy allows. Stop it first, give this one another SLUICE_PREFIX, or start it with SLUICE_STANDBY=on to take over when the other stops.",
      1,
    );
  }
  logger.info({ maxScopes: config.maxScopes, maxLiveScopes: config.maxLiveScopes }, "caps on scopes (SLUICE_MAX_SCOPES, SLUICE_MAX_LIVE_SCOPES)");
  void (async () => {
    for await (const s of nc.status()) logger.info({ status: s.type }, "NATS connection status");
  })();

  let inspect: ((event: InspectionEvent) => void) | undefined;
  let wsInspection: WebSocketInspection | undefined;
  if (config.inspect === "ws") {
    try {
      wsInspection = await startWebSocketInspection();
    } catch (e) {
      if (e instanceof InspectPortInUseError) fail(`SLUICE_INSPECT=ws: ${e.message}`, 1);
      throw e;
    }
    inspect = wsInspection.inspect;
    logger.info({ url: wsInspection.url }, `XState inspector: open ${wsInspection.url}`);
  } else if (config.inspect === "nats") {
    inspect = createNatsInspector({ nc, prefix: config.prefix }).inspect;
    logger.info({ subject: `${config.prefix}.inspect.events.>` }, "XState inspection events are published on NATS");
  }

  let events: DecisionEventThread | undefined;
  if (config.eventThread) {
    try {
      // The service's own publisher for this connection: these events share its turns' writes.
      const out = FramePublisher.of(nc, logger);
      const inline = (subject: string, body: string) => publishEvent(out, subject, body, logger);
      events = await DecisionEventThread.start({ servers, logger, inline });
      logger.info("decision events of busy turns are published from a thread of their own");
    } catch (err) {
      logger.warn({ err }, "decision events: no thread of their own, published by the service thread");
    }
  }

  const metrics = config.httpPort !== undefined ? new SluiceMetrics() : undefined;
  const base = {
    nc, policy, prefix: config.prefix, logger, inspect, observer: metrics?.observer, idleMs: config.idleMs, maxScopes: config.maxScopes, maxLiveScopes: config.maxLiveScopes, decisionEvents: events,
  };
  let service: SluiceService;
  try {
    service = await SluiceService.start({ ...base, persistence: config.persistence });
  } catch (e) {
    if (!config.persistence || !isJetStreamMissing(e)) throw e;
    if (config.persistMode === "on") fail(`SLUICE_PERSIST=on: the NATS server has no JetStream (${(e as Error).message})`, 1);
    logger.warn({ err: e }, "the NATS server has no JetStream: running WITHOUT persistence (state is lost on restart); set SLUICE_PERSIST=off to silence");
    service = await SluiceService.start(base);
  }
  if (service.persistence) {
    logger.info({ stream: service.persistence.journal.stream, bucket: service.persistence.snapshots.bucket }, "durable state: journal and snapshots in JetStream");
  }
  // Said after the start: a policy set at run time may have been restored in its place.
  if (!config.policyFile && service.registry.policy === policy) {
    logger.warn("no SLUICE_POLICY: running with no limits; set one or use admin.policy.set");
  }

  // The check above cannot see a twin started in the same instant: keep looking while serving.
  const twins = new TwinWatch({ nc, prefix: config.prefix, ownId: () => service.serviceId, logger });
  twins.start();

  let http: SluiceHttpServer | undefined;
  if (config.httpPort !== undefined) {
    try {
      http = await startHttpServer({ port: config.httpPort, service, nc, metrics, logger });
    } catch (e) {
      fail(`SLUICE_HTTP_PORT=${config.httpPort}: cannot listen (${(e as Error).message})`, 1);
    }
    logger.info({ url: http.url }, `metrics at ${http.url}/metrics, dashboard at ${http.url}/`);
  }

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, "shutting down");
    try {
      twins.stop();
      await service.stop();
      // The events of the last decisions are published before the connections close.
      await events?.stop();
      await http?.stop();
      wsInspection?.stop();
      await nc.drain();
      await local.stop();
      logger.flush();
      process.exit(0);
    } catch (err) {
      logger.error({ err }, "unclean shutdown");
      logger.flush();
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  nc.closed().then((err) => {
    if (!shuttingDown) {
      logger.error({ err }, "NATS connection closed");
      void local.stop().finally(() => process.exit(1));
    }
  });
}

/** Does `e` say the server (or account) has no JetStream? */
function isJetStreamMissing(e: unknown): boolean {
  const text = e instanceof Error ? `${e.name} ${e.message} ${String((e as { code?: unknown }).code ?? "")}` : String(e);
  return /jetstream not enabled|JetStreamNotEnabled|no responders|503/i.test(text);
}

main().catch((err) => {
  const denied = permissionDenied(err);
  if (denied !== undefined) {
    fail(`NATS refused a permission sluice needs (${denied}): grant it to sluice's NATS user; the README's "NATS permissions" lists them`, 1);
  }
  // NATS unreachable (a configured server that is down): one line, as every other start failure.
  if (err instanceof Error && (err.name === "ConnectionError" || /connection refused|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/.test(err.message))) {
    fail(`cannot connect to NATS (${err.message}); check NATS_URL, or unset it to use or start a local nats-server`, 1);
  }
  process.stderr.write(`sluice: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
