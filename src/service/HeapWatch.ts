import { getHeapSpaceStatistics, getHeapStatistics } from "node:v8";
import type { Logger } from "../log.js";

/** Defaults of {@link HeapWatchOptions}. */
export const DEFAULT_HEAP_WATCH = {
  /** How often the heap is looked at, ms. */
  everyMs: 100,
  /**
   * Memory is short from this share of the old generation's ceiling in use… With npm
   * start's flags the ceiling is 1280 MB; a sluice flooded with new keys and ids died of
   * heap exhaustion with 1210 MB in use in the whole heap (its last scavenges, --trace-gc
   * output); the 1,000,000-key memory series peaks under 1000 MB in the whole heap.
   */
  shortAt: 0.85,
  /** …until it is back under this share. */
  easeAt: 0.8,
} as const;

/** The old generation's use and ceiling, bytes. */
export interface HeapFigures {
  used: number;
  ceiling: number;
}

/** V8's semi-space size, MB, as given to this process (`--max-semi-space-size`), else Node's default of 16. */
function semiSpaceMB(): number {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)];
  for (const a of args) {
    const m = /^--max[-_]semi[-_]space[-_]size=(\d+)$/.exec(a);
    if (m) return Number(m[1]);
  }
  return 16;
}

/**
 * The old generation's figures: what the heap holds outside the young generation, against
 * the heap's ceiling less the young generation's reserve (V8 counts three semi-spaces in
 * `heap_size_limit`: 1472 MB with npm start's 1280 MB and 64 MB semi-spaces). Young objects
 * are left out: most are garbage by the next scavenge.
 */
export function oldGenerationFigures(): HeapFigures {
  const { used_heap_size, heap_size_limit } = getHeapStatistics();
  let young = 0;
  for (const sp of getHeapSpaceStatistics()) if (sp.space_name === "new_space" || sp.space_name === "new_large_object_space") young += sp.space_used_size;
  return { used: used_heap_size - young, ceiling: heap_size_limit - 3 * semiSpaceMB() * 2 ** 20 };
}

export interface HeapWatchOptions {
  logger: Logger;
  everyMs?: number;
  shortAt?: number;
  easeAt?: number;
  /** Where the figures come from. Default {@link oldGenerationFigures}. */
  figures?: () => HeapFigures;
}

/**
 * Tells whether the process is short of memory: its V8 old generation in use near its
 * ceiling (`--max-old-space-size`). The service then refuses the admissions that would
 * grow its state (a new or woken scope, an id to remember) rather than run out of heap
 * and die: each bound on state (scopes, live actors, leases, remembered ids) fits the
 * default heap alone, not all of them full at once. Sampled every 100 ms, with a gap
 * between entering (85%) and leaving (80%) so that it does not flap. This measures the
 * process, not domain time: it runs on a real interval, unref'd.
 */
export class HeapWatch {
  /** Is memory short (as of the last sample)? */
  short = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly figures: () => HeapFigures;
  private readonly shortAt: number;
  private readonly easeAt: number;

  constructor(private readonly opts: HeapWatchOptions) {
    this.figures = opts.figures ?? oldGenerationFigures;
    this.shortAt = opts.shortAt ?? DEFAULT_HEAP_WATCH.shortAt;
    this.easeAt = opts.easeAt ?? DEFAULT_HEAP_WATCH.easeAt;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.opts.everyMs ?? DEFAULT_HEAP_WATCH.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Take a sample now; returns whether memory is short. */
  sample(): boolean {
    const { used, ceiling: limit } = this.figures();
    const share = limit > 0 ? used / limit : 0;
    const short = this.short ? share >= this.easeAt : share >= this.shortAt;
    if (short !== this.short) {
      const mb = (n: number) => Math.round(n / 2 ** 20);
      if (short) this.opts.logger.warn({ usedMB: mb(used), limitMB: mb(limit) }, "memory is short: admissions that need a new scope or name an id are refused until it frees");
      else this.opts.logger.info({ usedMB: mb(used), limitMB: mb(limit) }, "memory is no longer short");
    }
    this.short = short;
    return short;
  }
}
