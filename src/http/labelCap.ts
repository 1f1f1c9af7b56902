/**
 * Bounded label values. A metric label such as `model` takes whatever callers
 * send; without a cap, one buggy caller that sends a fresh model name per call
 * grows every series without limit. The first `max` distinct values keep their
 * own label; every later one is written {@link OTHER_LABEL}.
 */

/** The label of every value past the cap. */
export const OTHER_LABEL = "other";

/** Default number of distinct values a capped label keeps. */
export const DEFAULT_LABEL_CAP = 1000;

/** First come, first kept: a fixed set of at most `max` label values. */
export class LabelCap {
  private readonly kept = new Set<string>();

  /** @param max distinct values that keep their own label. Default {@link DEFAULT_LABEL_CAP}. */
  constructor(readonly max: number = DEFAULT_LABEL_CAP) {}

  /** The label for `value`: itself while it is (or can become) one of the kept values, else `other`. */
  label(value: string): string {
    if (this.kept.has(value)) return value;
    if (this.kept.size >= this.max) return OTHER_LABEL;
    this.kept.add(value);
    return value;
  }

  /** Whether `value` keeps its own label (without admitting it). */
  has(value: string): boolean {
    return this.kept.has(value);
  }

  /** Number of values kept. */
  get size(): number {
    return this.kept.size;
  }
}
