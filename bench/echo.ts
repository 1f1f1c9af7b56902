/**
 * The baseline: a bare NATS echo responder in its own Node process. It answers
 * every request on `--subject` (queue group `echo`) with the request's payload,
 * and prints `ready` on stdout once the subscription is on the server.
 *
 *   node dist/bench/echo.js --url=nats://127.0.0.1:4222 --subject=bench.echo
 */
import { connect } from "@nats-io/transport-node";
import { FlagError, flagString, parseFlags, rejectUnknown } from "./lib/cli.js";

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  rejectUnknown(flags, ["url", "subject"]);
  const url = flagString(flags, "url", "nats://127.0.0.1:4222");
  const subject = flagString(flags, "subject", "bench.echo");
  const nc = await connect({ servers: url, name: "sluice-bench-echo" });
  nc.subscribe(subject, {
    queue: "echo",
    callback: (err, msg) => {
      if (err) return;
      msg.respond(msg.data);
    },
  });
  await nc.flush();
  process.stdout.write("ready\n");
  const stop = (): void => {
    void nc.drain().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await nc.closed();
}

main().catch((err) => {
  process.stderr.write(`echo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof FlagError ? 2 : 1);
});
