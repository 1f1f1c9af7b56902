/**
 * Child processes of the bench: spawned with their output kept (the last 32 KiB)
 * for error messages, SIGKILLed if the orchestrator exits without stopping them,
 * and stopped with SIGTERM then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { onProcessExit } from "../../src/transport/localNats.js";

const OUTPUT_LIMIT = 32 * 1024;

export interface ChildOptions {
  /** Label for messages. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Copy the child's stderr to ours as it comes (prefixed with the name). */
  echoStderr?: boolean;
  /** Called with each stdout line. */
  onStdoutLine?: (line: string) => void;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class BenchChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  private out = "";
  private stdout = "";
  private alive = true;
  private stopping = false;

  constructor(opts: ChildOptions) {
    this.name = opts.name;
    this.child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once("error", (err) => {
        this.append(`spawn error: ${err.message}\n`);
        if (this.child.pid === undefined) {
          this.alive = false;
          resolve({ code: null, signal: null });
        }
      });
      this.child.once("close", (code, signal) => {
        this.alive = false;
        resolve({ code, signal });
      });
    });
    const unregister = onProcessExit(() => {
      if (this.alive) this.child.kill("SIGKILL");
    });
    void this.exited.then(unregister);

    let partial = "";
    this.child.stdout?.setEncoding("utf8");
    this.child.stdout?.on("data", (chunk: string) => {
      this.append(chunk);
      this.stdout += chunk;
      if (this.stdout.length > 4 * OUTPUT_LIMIT) this.stdout = this.stdout.slice(-OUTPUT_LIMIT);
      if (!opts.onStdoutLine) return;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") opts.onStdoutLine(line);
    });
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (chunk: string) => {
      this.append(chunk);
      if (opts.echoStderr) process.stderr.write(chunk.replace(/^(?=.)/gm, `[${this.name}] `));
    });
  }

  private append(text: string): void {
    this.out += text;
    if (this.out.length > OUTPUT_LIMIT) this.out = this.out.slice(-OUTPUT_LIMIT);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.alive;
  }

  /** True once {@link stop} was called: an exit after that is expected. */
  get stopRequested(): boolean {
    return this.stopping;
  }

  /** Everything written to stdout (bounded). */
  stdoutText(): string {
    return this.stdout;
  }

  /** The last 32 KiB of stdout and stderr, interleaved. */
  output(): string {
    return this.out;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5000): Promise<Exit> {
    this.stopping = true;
    if (!this.alive) return this.exited;
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), graceMs)));
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (first === "late" && this.alive) this.child.kill("SIGKILL");
    return this.exited;
  }
}

/** Error for a child that failed; carries the tail of its output. */
export class ChildFailedError extends Error {
  override readonly name = "ChildFailedError";
  constructor(child: BenchChild, what: string) {
    const tail = child.output().trimEnd().split("\n").slice(-30).join("\n");
    super(tail === "" ? `${child.name}: ${what}` : `${child.name}: ${what}; its output:\n${tail}`);
  }
}
