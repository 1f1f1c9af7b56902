/// <reference lib="dom" />
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SluiceHttpServer, startHttpServer } from "../../src/http/httpServer.js";
import { SluiceMetrics } from "../../src/http/metrics.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";

/** Debian's chromium; CI installs it (.ci/run). Without it this test fails: it is never skipped. */
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

const POLICY = {
  scopes: {
    key: { default: { rpm: 1000, budget: { limit: 10 } } },
    model: {
      default: {
        breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 4, cooldownMs: 600_000, probes: 1 },
        latency: { ttftMs: 1000, itlMs: 50, tauMs: 15_000 },
      },
      overrides: { "gpt-4o": { fallback: "gpt-4o-mini" } },
    },
  },
};

let server: NatsServerHandle;
let nc: NatsConnection;
let service: SluiceService;
let http: SluiceHttpServer;
let browser: Browser | undefined;
let dir: string;
const prefix = "dash";

beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
  nc = await connect({ servers: server.url });
  const metrics = new SluiceMetrics();
  service = await SluiceService.start({ nc, policy: parsePolicy(POLICY), prefix, observer: metrics.observer });
  // Frames are made by the test (frame() below), not by the feed's timer: an hour never passes here.
  http = await startHttpServer({ port: 0, host: "127.0.0.1", service, nc, metrics, feed: { intervalMs: 3_600_000 } });
  dir = await mkdtemp(join(tmpdir(), "sluice-dashboard-"));
});
afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await http?.stop();
  await nc?.drain();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function req(subject: string, body: unknown): Promise<any> {
  return (await nc.request(`${prefix}.${subject}`, JSON.stringify(body), { timeout: 5000 })).json();
}

/** Frames the page has drawn (it counts them on <body data-frames>). */
async function drawn(page: Page): Promise<number> {
  return Number((await page.locator("body").getAttribute("data-frames")) ?? 0);
}

/** Make a frame from a fresh scan now, and wait until the page has drawn it. */
async function frame(page: Page): Promise<void> {
  const before = await drawn(page);
  http.metrics.scanner?.invalidate();
  http.feed.tick();
  await expect.poll(() => drawn(page), { timeout: 10_000 }).toBe(before + 1);
}

describe("dashboard - in a real browser", () => {
  it("shows each model's breaker and counts live, and renders a non-blank page", { timeout: 60_000 }, async () => {
    // In the test, not in a hook: a missing browser is this test's failure, never a skip.
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (the dashboard test needs a real browser)`).toBe(true);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

    // gpt-4o: four admitted calls fail upstream, its breaker opens, the next caller is refused.
    for (let i = 0; i < 4; i++) {
      const d = await req("admit", { key: "acme", model: "gpt-4o", cost: 0.5 });
      expect(d.decision).toBe("admit");
      await req("report", { lease: d.lease, outcome: "error", cost: 0.5, ttftMs: 900, itlMs: 30 });
    }
    expect(await req("admit", { key: "acme", model: "gpt-4o" })).toMatchObject({ reason: "circuit_open", fallback: "gpt-4o-mini" });
    // gpt-4o-mini: healthy traffic.
    for (let i = 0; i < 5; i++) {
      const d = await req("admit", { key: "globex", model: "gpt-4o-mini", cost: 1 });
      await req("report", { lease: d.lease, outcome: "ok", cost: 1, ttftMs: 300, itlMs: 12 });
    }

    // Models named like Object's own properties: any caller can name them, and the page must draw them as any other.
    for (const model of ["constructor", "__proto__"]) expect((await req("admit", { key: "globex", model })).decision).toBe("admit");
    http.metrics.scanner?.invalidate();
    http.feed.tick(); // the frame a page opened now is sent first
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${http.url}/`);
    await expect.poll(() => drawn(page), { timeout: 10_000 }).toBe(1);

    for (const model of ["constructor", "__proto__"]) expect(await page.locator(`article[data-model="${model}"]`).count(), model).toBe(1);
    const card = page.locator('article[data-model="gpt-4o"]');
    expect(await card.locator('[data-testid="breaker"]').textContent()).toBe("open");
    expect(await card.locator('[data-testid="admit-total"]').textContent()).toBe("4");
    expect(await card.locator('[data-testid="reject-total"]').textContent()).toBe("1");
    expect(await card.textContent()).toContain("gpt-4o-mini"); // the fallback
    const mini = page.locator('article[data-model="gpt-4o-mini"]');
    expect(await mini.locator('[data-testid="admit-total"]').textContent()).toBe("5");
    expect(await mini.locator('[data-testid="breaker"]').textContent()).toBe("closed");
    expect(await page.locator('[data-testid="kpi-breakers"] .value').textContent()).toContain("1");
    // Budgets: acme spent 2 of 10, globex 5 of 10; globex first.
    const rows = page.locator("#budgets tr[data-scope]");
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-scope")))).toEqual(["key:globex", "key:acme"]);
    expect(await rows.first().textContent()).toContain("50%");

    // A reason chip shows the refusals of the last 5 frames: the first refusal's chip, then none.
    const chip = card.locator('[data-reason="circuit_open"]');
    expect(await chip.count()).toBe(1);
    for (let i = 0; i < 5; i++) await frame(page);
    expect(await chip.count()).toBe(0);
    // Live: refusals after the page opened show up in the next frame, without a reload.
    for (let i = 0; i < 2; i++) await req("admit", { key: "acme", model: "gpt-4o" });
    await frame(page);
    expect(await chip.count()).toBe(1);
    expect(await card.locator('[data-testid="reject-total"]').textContent()).toBe("3");
    expect(await page.locator("body").getAttribute("data-frames")).toBe("7");

    const file = join(dir, "dashboard.png");
    await page.screenshot({ path: file, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();

    // Non-blank: a real PNG of some size, decoded in the browser, with many colours and much drawn on the background.
    const png = await readFile(file);
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
    expect((await stat(file)).size).toBeGreaterThan(30_000);
    const blank = await browser!.newPage();
    const pixels = await blank.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext("2d")!;
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, img.width, img.height).data;
      const bg = [data[0], data[1], data[2]];
      const colours = new Set<number>();
      let drawn = 0;
      for (let i = 0; i < data.length; i += 4) {
        colours.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
        if (Math.abs(data[i]! - bg[0]!) + Math.abs(data[i + 1]! - bg[1]!) + Math.abs(data[i + 2]! - bg[2]!) > 24) drawn++;
      }
      return { width: img.width, height: img.height, colours: colours.size, drawnShare: drawn / (data.length / 4) };
    }, png.toString("base64"));
    await blank.close();
    expect(pixels.width).toBe(1280);
    expect(pixels.height).toBeGreaterThan(600);
    expect(pixels.colours).toBeGreaterThan(200);
    expect(pixels.drawnShare).toBeGreaterThan(0.05);
  });
});
