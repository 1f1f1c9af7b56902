/**
 * The `sluice` command line: parse the arguments (node:util parseArgs), run one
 * command, print its result, and map failures to one line on stderr:
 * `sluice: <message>`, exit code 1; a bad command line also prints the
 * command's synopsis and exits 2.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isSluiceClientError } from "../client/SluiceClientError.js";
import { MAX_TIMEOUT_MS } from "../client/options.js";
import type { Command } from "./command.js";
import { admitCommand } from "./commands/admit.js";
import { inspectCommand, lsCommand } from "./commands/inspect.js";
import { policyCommand } from "./commands/policy.js";
import { reportCommand } from "./commands/report.js";
import { resetCommand } from "./commands/reset.js";
import { serveCommand } from "./commands/serve.js";
import { watchCommand } from "./commands/watch.js";
import { CliFailure, CommandContext, DEFAULT_CLI_TIMEOUT_MS, type GlobalOptions } from "./context.js";
import { type CliIo, EXIT, UsageError } from "./io.js";
import { COMMAND_HELP, GLOBAL_HELP, MAIN_HELP, SYNOPSIS } from "./usage.js";

/** Every command, by name. */
export const COMMANDS: Record<string, Command> = Object.fromEntries(
  [serveCommand, admitCommand, reportCommand, inspectCommand, lsCommand, watchCommand, policyCommand, resetCommand].map((c) => [c.name, c]),
);

const GLOBAL_OPTIONS = {
  server: { type: "string", short: "s" },
  prefix: { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Exit code of a command that keeps running and owns the process from then on (`serve`). */
const KEEP_RUNNING = -1;

/** The command name: the first argument that is neither an option nor a global option's value. */
function findCommand(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return args[i + 1];
    if (!a.startsWith("-") || a === "-") return a;
    if (["-s", "--server", "--prefix", "--timeout"].includes(a)) i++;
  }
  return undefined;
}

/** Run the CLI with `args` (without `node` and the script); resolves with the exit code (-1: keep running). */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  let ctx: CommandContext | undefined;
  try {
    const name = findCommand(args);
    if (name === undefined || name === "help") {
      const topic = name === "help" ? args[args.indexOf("help") + 1] : undefined;
      if (topic !== undefined && COMMAND_HELP[topic]) io.stdout.write(`${COMMAND_HELP[topic]}\n\n${GLOBAL_HELP}\n`);
      else if (topic !== undefined && name === "help") throw new UsageError(`help: unknown command ${JSON.stringify(topic)}`);
      else if (name === "help" || args.includes("--help") || args.includes("-h")) io.stdout.write(`${MAIN_HELP}\n`);
      else throw new UsageError("missing command");
      return EXIT.ok;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);

    let parsed;
    try {
      parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
    } catch (e) {
      // Node's messages run on with advice about "--"; the first sentence is the point.
      throw new UsageError(`${name}: ${(e as Error).message.split(/\.\s/)[0]!.replace(/\.$/, "")}`, name);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      io.stdout.write(`${COMMAND_HELP[name]}\n\n${GLOBAL_HELP}\n`);
      return EXIT.ok;
    }
    positionals.splice(positionals.indexOf(name), 1);

    let timeoutMs = DEFAULT_CLI_TIMEOUT_MS;
    if (values.timeout !== undefined) {
      timeoutMs = Number(values.timeout);
      // Within the client's bound: past Node's timer range a timer fires at once (or the CLI hangs).
      if (!/^\d+$/.test(values.timeout) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
        throw new UsageError(`--timeout: expected a positive number of ms, at most ${MAX_TIMEOUT_MS} (got ${JSON.stringify(values.timeout)})`, name);
      }
    }
    const global: GlobalOptions = { server: values.server, prefix: values.prefix, timeoutMs, json: values.json === true };
    if (global.prefix !== undefined && !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(global.prefix)) {
      throw new UsageError(`--prefix: expected subject tokens such as sluice or acme.sluice (got ${JSON.stringify(global.prefix)})`, name);
    }
    ctx = new CommandContext(io, global);
    const code = await command.run(ctx, positionals, values);
    if (code !== KEEP_RUNNING) await ctx.close();
    return code;
  } catch (e) {
    await ctx?.close();
    return fail(io, e);
  }
}

function fail(io: CliIo, e: unknown): number {
  const line = (text: string) => io.stderr.write(`sluice: ${text.replace(/\s*\n\s*/g, " ")}\n`);
  if (e instanceof UsageError) {
    line(e.message);
    const synopsis = e.command !== undefined ? SYNOPSIS[e.command] : undefined;
    io.stderr.write(synopsis ? `usage: ${synopsis}  (sluice ${e.command} --help)\n` : "usage: sluice <command> [arguments] [options]  (sluice --help)\n");
    return EXIT.usage;
  }
  if (isSluiceClientError(e)) line(`${e.code}: ${e.message}`);
  else if (e instanceof CliFailure) line(e.message);
  else line(e instanceof Error ? e.message : String(e));
  return EXIT.failed;
}

/** The process's own I/O. */
export const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  readFile: (path) => (path === "-" ? readStdin() : readFile(path, "utf8")),
  onInterrupt(fn) {
    process.once("SIGINT", fn);
    process.once("SIGTERM", fn);
    return () => {
      process.off("SIGINT", fn);
      process.off("SIGTERM", fn);
    };
  },
};

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

/** `bin/sluice.js`: run with the process's arguments and set its exit code. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const code = await runCli(argv, processIo);
  if (code !== KEEP_RUNNING) process.exitCode = code;
}
