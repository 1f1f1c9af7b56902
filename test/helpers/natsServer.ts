/**
 * A private `nats-server` per test: free port, JetStream store in a temp directory, and
 * stop / kill / restart for crash-and-recover tests. Never uses the server on :4222.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  findNatsServerBinary,
  freePort,
  NatsServerStartError,
  onProcessExit,
  removeDirSync,
  spawnNatsServer,
  type NatsServerProcess,
} from "../../src/transport/localNats.js";

export { freePort };

/** A running (or killed, restartable) test server. */
export interface NatsServerHandle {
  /** `nats://127.0.0.1:<port>`; stays the same across restarts. */
  url: string;
  /** The port; stays the same across restarts. */
  port: number;
  /** JetStream store directory; stays the same across restarts. */
  storeDir: string;
  /** Process id of the current server process (changes on restart). */
  pid: number;
  /** SIGTERM, wait for exit, remove `storeDir` unless `keepStore`. */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit, keep `storeDir` (for restart tests). */
  kill(): Promise<void>;
  /** Start again on the same port and store dir (terminating the current process first if it runs); wait until ready. */
  restart(): Promise<void>;
}

/** Options of {@link startNatsServer}. */
export interface StartNatsServerOptions {
  /** `-js -sd <storeDir>`; default true. */
  jetstream?: boolean;
  /** Port to listen on; default a free one (retried if taken in between). */
  port?: number;
  /** Store directory; default a fresh `mkdtemp` under the OS temp dir. */
  storeDir?: string;
  /** Keep `storeDir` on `stop()`. Default: false for a directory this helper created, true for one passed in. */
  keepStore?: boolean;
  /** Extra `nats-server` arguments. */
  args?: string[];
  /** Readiness timeout; default 10 000 ms. */
  readyTimeoutMs?: number;
}

/**
 * Start a `nats-server` on 127.0.0.1 and resolve once it accepts TCP connections (polled every
 * 20 ms, up to 10 s; rejects with the server's output otherwise). The process is SIGKILLed and a
 * helper-created store removed if the test process exits without `stop()`.
 */
export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = findNatsServerBinary();
  if (binary === undefined) {
    throw new Error("nats-server binary not found on PATH, in /usr/sbin or /usr/local/bin (apt-get install nats-server)");
  }
  const jetstream = opts.jetstream ?? true;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "sluice-test-nats-")));
  const keepStore = opts.keepStore ?? opts.storeDir !== undefined;
  const unregisterDir = keepStore ? () => {} : onProcessExit(() => removeDirSync(storeDir));

  const spawnOn = (port: number): Promise<NatsServerProcess> =>
    spawnNatsServer({ binary, port, jetstream, storeDir, args: opts.args, readyTimeoutMs: opts.readyTimeoutMs });

  let proc: NatsServerProcess;
  try {
    if (opts.port !== undefined) {
      proc = await spawnOn(opts.port);
    } else {
      for (let attempt = 1; ; attempt++) {
        try {
          proc = await spawnOn(await freePort());
          break;
        } catch (err) {
          if (!(err instanceof NatsServerStartError && err.addressInUse) || attempt >= 5) throw err;
        }
      }
    }
  } catch (err) {
    if (!keepStore) {
      unregisterDir();
      await rm(storeDir, { recursive: true, force: true });
    }
    throw err;
  }

  const port = proc.port;
  return {
    url: proc.url,
    port,
    storeDir,
    get pid() {
      return proc.pid;
    },
    async stop() {
      await proc.terminate("SIGTERM");
      if (!keepStore) {
        await rm(storeDir, { recursive: true, force: true });
        unregisterDir();
      }
    },
    async kill() {
      await proc.terminate("SIGKILL");
    },
    async restart() {
      await proc.terminate("SIGTERM");
      proc = await spawnOn(port);
    },
  };
}
