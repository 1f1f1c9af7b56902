/**
 * Full-GC heap figure of another Node process through its inspector:
 * `HeapProfiler.collectGarbage`, then `Runtime.getHeapUsage`; prints one JSON
 * line `{ "usedSize", "totalSize" }` (bytes). Run by the orchestrator as
 *
 *   node --experimental-websocket dist/bench/heapprobe.js --inspect-port=PORT
 *
 * (a separate process because Node 20 has WebSocket only behind that flag).
 */
import { FlagError, flagInt, parseFlags, rejectUnknown } from "./lib/cli.js";

interface Cdp {
  call(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
}

async function open(url: string): Promise<Cdp> {
  const WS = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
  if (!WS) throw new Error("no WebSocket in this Node (run with --experimental-websocket)");
  const ws = new WS(url);
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  ws.addEventListener("message", (ev: MessageEvent) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) p?.reject(new Error(msg.error.message));
    else p?.resolve(msg.result ?? {});
  });
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)));
  });
  let id = 0;
  return {
    call: (method, params = {}) =>
      new Promise((resolve, reject) => {
        pending.set(++id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  rejectUnknown(flags, ["inspect-port"]);
  const port = flagInt(flags, "inspect-port", 0, 1);
  if (port === 0) throw new FlagError("--inspect-port: required");
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl?: string }[];
  const url = list[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  const cdp = await open(url);
  try {
    await cdp.call("HeapProfiler.collectGarbage");
    await cdp.call("HeapProfiler.collectGarbage");
    const usage = await cdp.call("Runtime.getHeapUsage");
    process.stdout.write(`${JSON.stringify({ usedSize: usage.usedSize, totalSize: usage.totalSize })}\n`);
  } finally {
    cdp.close();
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    process.stderr.write(`heapprobe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof FlagError ? 2 : 1);
  });
