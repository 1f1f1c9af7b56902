/**
 * sluice's HTTP side (node:http, no framework): Prometheus metrics, health and
 * readiness probes, and a live dashboard.
 *
 * | path | answer |
 * |---|---|
 * | `/metrics` | Prometheus text exposition |
 * | `/healthz` | 200 while the process runs |
 * | `/readyz` | 200 while NATS is connected and the service serves; 503 otherwise |
 * | `/` | the dashboard page |
 * | `/events` | server-sent events for the dashboard: `history` once, then a frame per second |
 * | `/api/snapshot` | the latest frame as JSON |
 *
 * There is no authentication: serve it on a private network (the dashboard shows
 * scope names, API-key names among them).
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Logger, silentLogger } from "../log.js";
import { type ConnectionState, watchConnection } from "./connectionState.js";
import { DASHBOARD_HTML } from "./dashboardPage.js";
import { DashboardFeed, type DashboardFeedOptions, type DashboardFrame } from "./dashboardFeed.js";
import { type MetricsSource, SluiceMetrics } from "./metrics.js";

/** Defaults of {@link HttpServerOptions}. */
export const DEFAULT_HTTP = {
  /** All interfaces: Prometheus in another container must reach it. */
  host: "0.0.0.0",
  /** An SSE client this far behind (bytes buffered) is dropped rather than buffered without bound. */
  maxBufferedBytes: 4 * 1024 * 1024,
  /** Most dashboard streams (`/events`) open at once; more are answered 503. */
  maxStreams: 64,
  /** Most connections at once: more are closed as they come (a flood of idle sockets must not use up the process's descriptors, which NATS needs). */
  maxConnections: 512,
  /** How long a request's headers may take to arrive, ms (a client trickling them holds a socket). */
  headersTimeoutMs: 10_000,
  /** How often idle and slow connections are checked, ms. */
  checkEveryMs: 5_000,
} as const;

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** Port; 0 picks a free one. */
  port: number;
  /** Interface to listen on. Default `0.0.0.0`. */
  host?: string;
  /** The running service (a `SluiceService`). */
  service: MetricsSource & { readonly serving: boolean };
  /** Its NATS connection, for readiness and `sluice_nats_connected`. */
  nc: NatsConnection;
  /** The metrics whose observer the service was started with; default: new ones (counters then stay at 0). */
  metrics?: SluiceMetrics;
  logger?: Logger;
  /** Limits on clients (see {@link DEFAULT_HTTP}); tests shorten the times. */
  limits?: Partial<Record<"maxStreams" | "maxConnections" | "headersTimeoutMs" | "checkEveryMs", number>>;
  /** Dashboard feed settings (interval, history length). */
  feed?: Partial<Pick<DashboardFeedOptions, "intervalMs" | "historyLength" | "maxModels">>;
}

/** A running HTTP server. */
export interface SluiceHttpServer {
  /** `http://<host>:<port>` (127.0.0.1 when listening on all interfaces). */
  readonly url: string;
  readonly port: number;
  readonly metrics: SluiceMetrics;
  readonly feed: DashboardFeed;
  /** Open event streams (dashboards watching). */
  readonly streams: number;
  /** End the event streams, close every connection and the listener; resolves once closed. */
  stop(): Promise<void>;
}

/** Start serving; resolves once listening. */
export async function startHttpServer(opts: HttpServerOptions): Promise<SluiceHttpServer> {
  const logger = opts.logger ?? silentLogger;
  const metrics = opts.metrics ?? new SluiceMetrics();
  const connection: ConnectionState = watchConnection(opts.nc);
  metrics.bind(opts.service, connection.connected);
  const feed = new DashboardFeed({ metrics, source: opts.service, connected: connection.connected, ...opts.feed });
  const streams = new Set<ServerResponse>();
  const ready = () => connection.connected() && opts.service.serving;

  const limits = {
    maxStreams: opts.limits?.maxStreams ?? DEFAULT_HTTP.maxStreams,
    maxConnections: opts.limits?.maxConnections ?? DEFAULT_HTTP.maxConnections,
    headersTimeoutMs: opts.limits?.headersTimeoutMs ?? DEFAULT_HTTP.headersTimeoutMs,
    checkEveryMs: opts.limits?.checkEveryMs ?? DEFAULT_HTTP.checkEveryMs,
  };
  const server: Server = createServer({ connectionsCheckingInterval: limits.checkEveryMs, headersTimeout: limits.headersTimeoutMs, requestTimeout: 2 * limits.headersTimeoutMs }, (req, res) => {
    handle(req, res).catch((err) => {
      logger.error({ err, url: req.url }, "http request failed");
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    });
  });
  // Keep-alive sockets of idle scrapers must not hold stop() up; see closeAllConnections in stop().
  server.keepAliveTimeout = 5_000;
  server.maxConnections = limits.maxConnections;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
      return;
    }
    // The origin form (/metrics?x), or the absolute form HTTP/1.1 also allows (http://host/metrics).
    const url = req.url ?? "/";
    const path = /^https?:\/\//i.test(url) ? new URL(url).pathname : url.split("?", 1)[0];
    switch (path) {
      case "/metrics":
        send(res, 200, metrics.contentType, await metrics.metrics());
        return;
      case "/healthz":
        send(res, 200, "application/json", JSON.stringify({ ok: true }) + "\n");
        return;
      case "/readyz": {
        const body = { ready: ready(), nats: connection.connected(), serving: opts.service.serving };
        send(res, body.ready ? 200 : 503, "application/json", JSON.stringify(body) + "\n");
        return;
      }
      case "/":
      case "/index.html":
        send(res, 200, "text/html; charset=utf-8", DASHBOARD_HTML, { "Content-Security-Policy": CSP });
        return;
      case "/api/snapshot":
        send(res, 200, "application/json", JSON.stringify(feed.latest()));
        return;
      case "/events":
        openStream(req, res);
        return;
      default:
        send(res, 404, "text/plain; charset=utf-8", "not found\n");
    }
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "HEAD" && streams.size >= limits.maxStreams) {
      send(res, 503, "text/plain; charset=utf-8", `too many dashboard streams open (${limits.maxStreams})\n`, { "Retry-After": "10" });
      return;
    }
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    // A client gone without closing (a laptop shut) is found by TCP keepalive, not only once 4 MB back up.
    req.socket.setKeepAlive(true, 30_000);
    streams.add(res);
    res.write(`retry: 2000\n\nevent: history\ndata: ${JSON.stringify(feed.history())}\n\n`);
    write(feed.latest());
    const unsubscribe = feed.subscribe(write);
    const close = () => {
      unsubscribe();
      streams.delete(res);
    };
    // The response's close: the client went away, or stop() ended the stream.
    res.on("close", close);
    res.on("error", close);

    function write(frame: DashboardFrame): void {
      if (res.writableEnded) return;
      if (res.writableLength > DEFAULT_HTTP.maxBufferedBytes) {
        // A client that does not read: drop it instead of buffering frames for it forever.
        close();
        res.destroy();
        return;
      }
      res.write(`data: ${JSON.stringify(frame)}\n\n`);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? DEFAULT_HTTP.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => logger.error({ err }, "http server error"));
  feed.start();
  const address = server.address() as AddressInfo;
  const host = address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;

  let stopped: Promise<void> | undefined;
  return {
    url,
    port: address.port,
    metrics,
    feed,
    get streams() {
      return streams.size;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        feed.stop();
        connection.stop();
        for (const res of streams) res.end();
        streams.clear();
        server.close(() => resolve());
        // Idle keep-alive sockets and the ended event streams: close them now rather than at their timeouts.
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}

/** The dashboard loads nothing from elsewhere; say so to the browser too. */
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'";

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store", ...headers });
  res.end(res.req.method === "HEAD" ? undefined : body);
}
