/**
 * Progress of a bench run on stderr. On a terminal: one bar, redrawn in place
 * (a few times a second, from the planned length of each step), with messages
 * printed above it. Elsewhere (CI, a pipe): plain lines, one per message.
 */

const BAR_WIDTH = 28;

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): boolean;
}

function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

export class Progress {
  private readonly tty: boolean;
  private doneMs = 0;
  private steps = 0;
  private step?: { label: string; plannedMs: number; startedAt: number };
  private timer?: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private shown = false;
  private stopped = false;

  /**
   * @param plannedMs the planned length of everything (the sum of the steps' planned lengths)
   * @param totalSteps how many steps there are
   */
  constructor(
    private readonly plannedMs: number,
    private readonly totalSteps: number,
    private readonly stream: ProgressStream = process.stderr,
    tty?: boolean,
  ) {
    this.tty = tty ?? (stream.isTTY === true && process.env.TERM !== "dumb");
  }

  /** A message: above the bar on a terminal, a plain line elsewhere. */
  log(line: string): void {
    if (this.tty && !this.stopped) {
      this.clear();
      this.stream.write(`bench: ${line}\n`);
      this.draw();
    } else this.stream.write(`bench: ${line}\n`);
  }

  /** Start a step that should take about `plannedMs`. */
  begin(label: string, plannedMs: number): void {
    this.step = { label, plannedMs, startedAt: Date.now() };
    if (this.tty && !this.stopped) {
      this.timer ??= setInterval(() => this.draw(), 200);
      this.timer.unref();
      this.draw();
    }
  }

  /** The step is done; `line`, if given, is logged (on a terminal above the bar). */
  end(line?: string): void {
    if (this.step) {
      this.doneMs += this.step.plannedMs;
      this.steps++;
      this.step = undefined;
    }
    if (line !== undefined) this.log(`[${this.steps}/${this.totalSteps}] ${line}`);
    else this.draw();
  }

  /** Remove the bar (before the final output, or on exit). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.clear();
    this.stopped = true;
  }

  private fraction(): number {
    const inStep = this.step ? Math.min(this.step.plannedMs, Date.now() - this.step.startedAt) : 0;
    return this.plannedMs > 0 ? Math.min(1, (this.doneMs + inStep) / this.plannedMs) : 0;
  }

  /** The bar line, without escape codes. */
  render(): string {
    const f = this.fraction();
    const full = Math.round(f * BAR_WIDTH);
    const elapsed = Date.now() - this.startedAt;
    // Scale what is left by how the steps so far kept to plan.
    const pace = this.doneMs > 0 ? Math.max(0.5, Math.min(3, elapsed / Math.max(1, this.doneMs + (this.step ? Math.min(this.step.plannedMs, Date.now() - this.step.startedAt) : 0)))) : 1;
    const left = Math.max(0, (this.plannedMs - f * this.plannedMs) * pace);
    const label = this.step?.label ?? "";
    return `bench ${"█".repeat(full)}${"░".repeat(BAR_WIDTH - full)} ${String(Math.floor(f * 100)).padStart(3)}%  ${Math.min(this.steps + 1, this.totalSteps)}/${this.totalSteps}  ${fmtDuration(elapsed)} elapsed, ~${fmtDuration(left)} left  ${label}`;
  }

  private draw(): void {
    if (!this.tty || this.stopped) return;
    const cols = this.stream.columns ?? 100;
    let text = this.render();
    if (text.length > cols - 1) text = text.slice(0, Math.max(0, cols - 1));
    this.stream.write(`\r\x1b[2K${text}`);
    this.shown = true;
  }

  private clear(): void {
    if (!this.shown) return;
    this.stream.write("\r\x1b[2K");
    this.shown = false;
  }
}
