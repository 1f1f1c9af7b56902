/**
 * Memory with many keys: drive `keys` distinct keys (a few admissions each)
 * through a sluice process of its own — persistence off, a short idle time so
 * that passivation runs during the drive, a policy where every key has an rpm
 * limit and a small request budget (so a passivated key keeps its state as a
 * dormant context) — and watch its memory: VmRSS / VmHWM from /proc every
 * 200 ms, heap and live actors from its /metrics every second.
 *
 * Estimates (the dormant count is not exported; the heap is sampled without a
 * forced GC, so these are estimates within a few tens of bytes per key):
 *   bytes per passivated key = (heap once the keys went idle − heap of the empty
 *                               process) ÷ (keys − live actors then);
 *   bytes per live actor     = (peak heap − empty heap − dormant keys at that
 *                               sample × bytes per passivated key) ÷ live actors at that sample.
 */
import { performance } from "node:perf_hooks";
import { connect } from "@nats-io/transport-node";
import { type Sample, procMemory, scrape, sumOf } from "./scrape.js";
import type { SluiceTarget } from "./targets.js";

export const MEMORY_MODEL = "mem-model";
export const memKey = (i: number): string => `mk-${i}`;

/** The policy of the memory series' sluice. */
export function memoryPolicy(): Record<string, unknown> {
  return {
    leaseTtlMs: 1_000,
    scopes: {
      key: { default: { rpm: 60, budget: { limit: 1_000, unit: "requests", period: "day", calendar: true } } },
      model: { default: { rpm: 1_000_000_000, concurrency: 1_000_000_000 } },
    },
  };
}

export interface MemoryOptions {
  natsUrl: string;
  target: SluiceTarget;
  keys: number;
  admitsPerKey: number;
  batchSize: number;
  concurrency: number;
  idleMs: number;
  /** Longest wait for the keys to be passivated after the drive, ms. */
  tailMaxMs: number;
  timeoutMs: number;
  log: (line: string) => void;
  /** Heap used right after a full GC of the sluice process, bytes (bench/heapprobe.ts); undefined: not available. */
  gcHeap?: () => Promise<number | undefined>;
}

export interface MemoryResult {
  keys: number;
  admitsPerKey: number;
  batchSize: number;
  concurrency: number;
  idleMs: number;
  driveMs: number;
  keysPerSecond: number;
  decisionsPerSecond: number;
  admitted: number;
  rejected: number;
  errors: number;
  firstError?: string;
  /** VmHWM at the end: the peak resident set of the whole run. */
  peakRssBytes: number;
  /** Largest VmRSS seen by the 200 ms sampler. */
  maxSampledRssBytes: number;
  emptyHeapBytes: number;
  emptyRssBytes: number;
  peakHeapBytes: number;
  /** Live actors, and keys driven so far, at the sample with the peak heap. */
  liveAtPeakHeap: number;
  keysAtPeakHeap: number;
  maxLiveActors: number;
  /** After the tail wait. */
  idleHeapBytes: number;
  idleRssBytes: number;
  liveAfterIdle: number;
  dormantAfterIdle: number;
  tailMs: number;
  bytesPerLiveActor: number;
  bytesPerPassivatedKey: number;
  /**
   * Heap used after a full GC (through the inspector), bytes: the empty process, right after
   * the drive (live actors then), after idle. Absent when the probe could not run; the
   * per-actor and per-key figures then come from the /metrics heap, garbage included.
   */
  gc?: { empty: number; afterDrive: number; liveAfterDrive: number; idle: number; liveIdle: number };
  /** Where the per-actor and per-key figures come from. */
  basis: "full-GC heap (inspector)" | "heap from /metrics (no forced GC)";
  /** heap, live actors, RSS over time (ms since the drive began). */
  timeline: { t: number; heap: number; live: number; rss: number; keys: number }[];
}

/** Largest VmRSS the sampler of the last run saw, bytes (read when the run failed). */
export let observedPeakRss = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const heapOf = (s: readonly Sample[]): number => sumOf(s, "nodejs_heap_size_used_bytes");
const liveOf = (s: readonly Sample[]): number => sumOf(s, "sluice_live_actors");
const rssOf = (s: readonly Sample[]): number => sumOf(s, "process_resident_memory_bytes");

export async function runMemorySeries(o: MemoryOptions): Promise<MemoryResult> {
  const pid = o.target.pid;
  const http = o.target.httpUrl;
  if (pid === undefined || http === undefined) throw new Error("memory series: sluice not started with /metrics");
  const subject = `${o.target.prefix}.admit.batch`;

  // The empty process: a few scrapes, the last one counts (the first ones warm the exporter).
  let empty: Sample[] = [];
  for (let i = 0; i < 3; i++) {
    empty = await scrape(http);
    await sleep(300);
  }
  const emptyHeap = heapOf(empty);
  const emptyRss = rssOf(empty);
  const gcHeap = async (): Promise<number | undefined> => {
    try {
      return await o.gcHeap?.();
    } catch (err) {
      o.log(`memory: no full-GC heap figure (${err instanceof Error ? err.message : String(err)})`);
      return undefined;
    }
  };
  const gcEmpty = await gcHeap();

  // Samplers: /proc every 200 ms, /metrics every second (one at a time: a scrape walks every live actor).
  let maxRss = 0;
  observedPeakRss = 0;
  let driven = 0;
  let sampling = true;
  const t0 = performance.now();
  const rssLoop = (async () => {
    while (sampling) {
      const m = await procMemory(pid);
      if (m && m.rss > maxRss) maxRss = observedPeakRss = m.rss;
      await sleep(200);
    }
  })();
  const timeline: MemoryResult["timeline"] = [];
  let peakHeap = 0;
  let liveAtPeak = 0;
  let keysAtPeak = 0;
  let maxLive = 0;
  let scrapeError: unknown;
  const sampleMetrics = async (): Promise<Sample[] | undefined> => {
    try {
      const s = await scrape(http);
      const heap = heapOf(s);
      const live = liveOf(s);
      timeline.push({ t: Math.round(performance.now() - t0), heap, live, rss: rssOf(s), keys: driven });
      if (heap > peakHeap) {
        peakHeap = heap;
        liveAtPeak = live;
        keysAtPeak = driven;
      }
      if (live > maxLive) maxLive = live;
      return s;
    } catch (err) {
      scrapeError ??= err;
      return undefined;
    }
  };
  let driving = true;
  const metricsLoop = (async () => {
    while (driving) {
      const started = performance.now();
      await sampleMetrics();
      await sleep(Math.max(0, 1000 - (performance.now() - started)));
    }
  })();

  // The drive: `concurrency` workers, each sending the next batch of `batchSize` admissions
  // (`admitsPerKey` adjacent ones per key) until every key was driven.
  const nc = await connect({ servers: o.natsUrl, name: "sluice-bench-memory", maxReconnectAttempts: 0 });
  const enc = new TextEncoder();
  const keysPerBatch = Math.max(1, Math.floor(o.batchSize / o.admitsPerKey));
  let nextKey = 0;
  let admitted = 0;
  let rejected = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lastLog = performance.now();
  const admitNeedle = Buffer.from('"decision":"admit"');
  const rejectNeedle = Buffer.from('"decision":"reject"');
  const count = (buf: Buffer, needle: Buffer): number => {
    let n = 0;
    for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + needle.length)) n++;
    return n;
  };
  const worker = async (): Promise<void> => {
    while (nextKey < o.keys) {
      o.target.assertRunning();
      const from = nextKey;
      const to = Math.min(o.keys, from + keysPerBatch);
      nextKey = to;
      const body: unknown[] = [];
      for (let k = from; k < to; k++) for (let j = 0; j < o.admitsPerKey; j++) body.push({ key: memKey(k), model: MEMORY_MODEL, tokens: 10 });
      try {
        const reply = await nc.request(subject, enc.encode(JSON.stringify(body)), { timeout: o.timeoutMs });
        const code = reply.headers?.get("Nats-Service-Error-Code");
        if (code) throw new Error(`error reply ${code}: ${reply.string().slice(0, 200)}`);
        const buf = Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
        admitted += count(buf, admitNeedle);
        rejected += count(buf, rejectNeedle);
      } catch (err) {
        o.target.assertRunning();
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        if (errors > 100) throw new Error(`memory series: more than 100 failed batches (first: ${firstError})`);
      }
      driven = Math.max(driven, to);
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now();
        o.log(`memory: ${driven.toLocaleString("en-US")} / ${o.keys.toLocaleString("en-US")} keys, ${Math.round(driven / ((lastLog - t0) / 1000)).toLocaleString("en-US")} keys/s, RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB`);
      }
    }
  };
  let driveMs = 0;
  try {
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    driveMs = performance.now() - t0;
  } finally {
    await nc.close().catch(() => {});
    driving = false;
    await metricsLoop;
    if (!o.target.running) {
      sampling = false;
      await rssLoop;
    }
  }
  o.target.assertRunning();
  // Right after the drive: live actors at (near) their most, a full GC, then the count.
  const gcAfterDrive = gcEmpty === undefined ? undefined : await gcHeap();
  const liveAfterDrive = gcAfterDrive === undefined ? Number.NaN : liveOf((await sampleMetrics()) ?? []);

  // Tail: wait until the keys went idle and were passivated (idle time + sweeps), or the cap.
  const tailStart = performance.now();
  let last: Sample[] | undefined;
  let bestLive = Number.POSITIVE_INFINITY;
  let bestAt = performance.now();
  await sleep(o.idleMs + 1000);
  while (performance.now() - tailStart < o.tailMaxMs) {
    o.target.assertRunning();
    const s = await sampleMetrics();
    if (s) {
      last = s;
      const live = liveOf(s);
      if (live < bestLive) {
        bestLive = live;
        bestAt = performance.now();
      }
      if (live <= Math.max(10, o.keys * 0.001)) break;
      if (performance.now() - bestAt > 8000) break; // no longer falling
    }
    await sleep(1000);
  }
  // The idle heap: the smallest of a few samples (no forced GC; the smallest is nearest the live set).
  let idleHeap = Number.POSITIVE_INFINITY;
  let idleRss = 0;
  let liveEnd = last ? liveOf(last) : Number.NaN;
  for (let i = 0; i < 4; i++) {
    const s = await sampleMetrics();
    if (s && heapOf(s) < idleHeap) {
      idleHeap = heapOf(s);
      idleRss = rssOf(s);
      liveEnd = liveOf(s);
    }
    await sleep(750);
  }
  const tailMs = performance.now() - tailStart;
  const gcIdle = gcAfterDrive === undefined ? undefined : await gcHeap();
  const liveIdle = gcIdle === undefined ? Number.NaN : liveOf((await sampleMetrics()) ?? []);
  sampling = false;
  await rssLoop;
  if (!Number.isFinite(idleHeap)) throw new Error(`memory series: /metrics did not answer (${scrapeError instanceof Error ? scrapeError.message : String(scrapeError)})`);
  const hwm = (await procMemory(pid))?.hwm ?? maxRss;
  o.target.assertRunning();

  const dormant = Math.max(0, o.keys - liveEnd);
  let perDormant = dormant > 0 ? (idleHeap - emptyHeap) / dormant : Number.NaN;
  const dormantAtPeak = Math.max(0, keysAtPeak - liveAtPeak);
  let perLive = liveAtPeak > 0 ? (peakHeap - emptyHeap - (Number.isFinite(perDormant) ? dormantAtPeak * perDormant : 0)) / liveAtPeak : Number.NaN;
  let gc: MemoryResult["gc"];
  if (gcEmpty !== undefined && gcAfterDrive !== undefined && gcIdle !== undefined) {
    gc = { empty: gcEmpty, afterDrive: gcAfterDrive, liveAfterDrive, idle: gcIdle, liveIdle };
    const d = Math.max(0, o.keys - liveIdle);
    perDormant = d > 0 ? (gcIdle - gcEmpty) / d : Number.NaN;
    const dAfterDrive = Math.max(0, o.keys - liveAfterDrive);
    perLive = liveAfterDrive > 0 ? (gcAfterDrive - gcEmpty - (Number.isFinite(perDormant) ? dAfterDrive * perDormant : 0)) / liveAfterDrive : Number.NaN;
  }
  return {
    keys: o.keys,
    admitsPerKey: o.admitsPerKey,
    batchSize: keysPerBatch * o.admitsPerKey,
    concurrency: o.concurrency,
    idleMs: o.idleMs,
    driveMs,
    keysPerSecond: o.keys / (driveMs / 1000),
    decisionsPerSecond: (admitted + rejected) / (driveMs / 1000),
    admitted,
    rejected,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    peakRssBytes: Math.max(hwm, maxRss),
    maxSampledRssBytes: maxRss,
    emptyHeapBytes: emptyHeap,
    emptyRssBytes: emptyRss,
    peakHeapBytes: peakHeap,
    liveAtPeakHeap: liveAtPeak,
    keysAtPeakHeap: keysAtPeak,
    maxLiveActors: maxLive,
    idleHeapBytes: idleHeap,
    idleRssBytes: idleRss,
    liveAfterIdle: liveEnd,
    dormantAfterIdle: dormant,
    tailMs,
    bytesPerLiveActor: perLive,
    bytesPerPassivatedKey: perDormant,
    ...(gc ? { gc } : {}),
    basis: gc ? "full-GC heap (inspector)" : "heap from /metrics (no forced GC)",
    timeline,
  };
}
