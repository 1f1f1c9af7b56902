import { getHeapStatistics } from "node:v8";
import type { Logger } from "../log.js";

/** Defaults of {@link HeapWatchOptions}. */
export const DEFAULT_HEAP_WATCH = {
  /** How often the heap is looked at, ms. */
  everyMs: 100,
  /**
   * Memory is short from this share of the heap's ceiling (`heap_size_limit`) in use… The
   * ceiling counts the young generation's reserve (3 × --max-semi-space-size) too: with
   * npm start's flags it is 1472 MB, and a sluice flooded with new keys and ids died of
   * heap exhaustion at 1210 MB in use (82%); the 1,000,000-key memory series peaks at
   * about 980 MB (66%).
   */
  shortAt: 0.75,
  /** …until it is back under this share. */
  easeAt: 0.7,
} as const;

/** What a heap sample needs (`v8.getHeapStatistics()` has it). */
export interface HeapFigures {
  used_heap_size: number;
  heap_size_limit: number;
}

export interface HeapWatchOptions {
  logger: Logger;
  everyMs?: number;
  shortAt?: number;
  easeAt?: number;
  /** Where the figures come from. Default `v8.getHeapStatistics`. */
  figures?: () => HeapFigures;
}

/**
 * Tells whether the process is short of memory: its V8 heap in use near the heap's
 * ceiling (`--max-old-space-size`). The service then refuses the admissions that would
 * grow its state (a new or woken scope, an id to remember) rather than run out of heap
 * and die: each bound on state (scopes, live actors, leases, remembered ids) fits the
 * default heap alone, not all of them full at once. Sampled every 100 ms, with a gap
 * between entering (75%) and leaving (70%) so that it does not flap. This measures the
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
    this.figures = opts.figures ?? getHeapStatistics;
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
    const { used_heap_size: used, heap_size_limit: limit } = this.figures();
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
