/** What a CLI run talks to: its output streams, environment and interrupts, injectable for tests. */

/** A text sink: `process.stdout` / `process.stderr`, or a buffer in tests. */
export interface TextOut {
  write(text: string): unknown;
  /** True when it is a terminal (decides colours). */
  isTTY?: boolean;
}

/** The world of one CLI run. */
export interface CliIo {
  stdout: TextOut;
  stderr: TextOut;
  env: NodeJS.ProcessEnv;
  /** Read a file, or standard input for `-`. */
  readFile(path: string): Promise<string>;
  /** Register `fn` for SIGINT/SIGTERM; returns the unregistration. */
  onInterrupt(fn: () => void): () => void;
}

/** A bad command line: printed with the command's synopsis, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose synopsis to show; none: the general one. */
    readonly command?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** Exit codes: 0 done (admitted), 1 failed, 2 usage, 3 `admit` answered with a rejection. */
export const EXIT = { ok: 0, failed: 1, usage: 2, rejected: 3 } as const;
