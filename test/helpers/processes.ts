import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

/** The built service, as `npm start` runs it (`npm test` builds first, see the pretest script). */
export const MAIN = join(import.meta.dirname, "../../dist/src/main.js");

export interface RunningMain {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  out: () => string;
  /** Its exit code once it exits. */
  exit: Promise<number | null>;
}

/** Start `node dist/src/main.js` with `env` over the test's environment (LOG_LEVEL info unless given). */
export function runMain(env: Record<string, string>): RunningMain {
  let out = "";
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, LOG_LEVEL: "info", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, exit };
}

/** Poll `pred` every 20 ms until it holds; reject after `ms`. */
export async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}
