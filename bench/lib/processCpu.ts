/**
 * CPU time of another process, from `/proc/<pid>/stat`: what the bench reads of
 * sluice, the echo responder, redis-server and nats-server around a load
 * generator's measured window, to show where the machine's cores went.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { WINDOW_END, WINDOW_START } from "./result.js";

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux as built). */
function clockTicks(): number {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: 2000 });
  const n = Number.parseInt(r.stdout ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
}

let ticksPerSecond: number | undefined;

/**
 * User + system CPU time, ms, in the text of a `/proc/<pid>/stat` file: fields 14
 * and 15, counted after the command name, which is in parentheses and may itself
 * hold spaces and parentheses. Undefined when the text is not such a line.
 */
export function parseProcStatCpuMs(text: string, clkTck: number): number | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  // After ") ": state (field 3), ppid, …; utime is field 14, stime field 15.
  const rest = text.slice(close + 2).trim().split(/\s+/);
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / clkTck;
}

/** CPU time `pid` has used so far, ms, all its threads; undefined where /proc has no such process (or no /proc). */
export function processCpuMs(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  ticksPerSecond ??= clockTicks();
  return parseProcStatCpuMs(text, ticksPerSecond);
}

/**
 * Reads the CPU time of the processes a load generator drives over its measured
 * window: at its `#window start` line and again at `#window end`.
 */
export class WindowCpuReader {
  private start: { target?: number; nats?: number } | undefined;
  private result: { target?: number; nats?: number } | undefined;

  constructor(private readonly pids: { target?: number; nats?: number }) {}

  /** Feed each stdout line of the generator. */
  mark(line: string): void {
    if (line === WINDOW_START) this.start = this.read();
    else if (line === WINDOW_END && this.start) {
      const end = this.read();
      const used = (a?: number, b?: number): number | undefined => (a === undefined || b === undefined ? undefined : b - a);
      this.result = {};
      const target = used(this.start.target, end.target);
      const nats = used(this.start.nats, end.nats);
      if (target !== undefined) this.result.target = target;
      if (nats !== undefined) this.result.nats = nats;
    }
  }

  /** CPU ms of each process over the window (none before the window has closed). */
  used(): { target?: number; nats?: number } {
    return this.result ?? {};
  }

  private read(): { target?: number; nats?: number } {
    return {
      target: this.pids.target === undefined ? undefined : processCpuMs(this.pids.target),
      nats: this.pids.nats === undefined ? undefined : processCpuMs(this.pids.nats),
    };
  }
}
