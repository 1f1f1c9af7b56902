/** What a client can do to the HTTP server: hold streams, trickle headers, use the absolute request form. */
import { request } from "node:http";
import { connect as tcp } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SluiceHttpServer, startHttpServer } from "../../src/http/httpServer.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer();
let service: SluiceService;
let http: SluiceHttpServer;

beforeAll(async () => {
  service = await SluiceService.start({ nc: nats.nc, policy: parsePolicy({ scopes: {} }), prefix: "httplim" });
  http = await startHttpServer({ port: 0, host: "127.0.0.1", service, nc: nats.nc, limits: { maxStreams: 2, headersTimeoutMs: 300, checkEveryMs: 100 } });
});
afterAll(async () => {
  await http?.stop();
  await service?.stop();
});

/** Open `/events` and resolve with its status once the headers are in; the response stays open. */
function openEvents(): Promise<{ status: number; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(`${http.url}/events`, (res) => {
      res.on("data", () => undefined);
      resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end();
  });
}

/** Send `text` on a raw connection; resolves with everything received once the server closes it. */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const s = tcp(http.port, "127.0.0.1", () => s.write(text));
    s.on("data", (d) => (got += d));
    s.on("close", () => resolve(got));
    s.on("error", reject);
  });
}

describe("http - limits on clients", () => {
  it("at most maxStreams dashboard streams; more are answered 503 until one closes", async () => {
    const a = await openEvents();
    const b = await openEvents();
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await openEvents();
    expect(c.status).toBe(503);
    c.close();
    a.close();
    await expect.poll(() => http.streams).toBe(1);
    const d = await openEvents();
    expect(d.status).toBe(200);
    b.close();
    d.close();
  });

  it("a client trickling its headers is cut off; the absolute request form is served", async () => {
    // Never finishes its headers: the server closes the connection (a 408), rather than hold it.
    const slow = await raw("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    expect(slow).toMatch(/^HTTP\/1\.1 408|^$/);
    const absolute = await raw(`GET http://127.0.0.1:${http.port}/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(absolute).toMatch(/^HTTP\/1\.1 200 /);
    expect(absolute).toContain('{"ok":true}');
  });
});
