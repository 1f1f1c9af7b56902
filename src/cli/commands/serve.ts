/** `sluice serve`: run the service in this process, exactly as `npm start` does. */
import { type Command, expectPositionals, str } from "../command.js";

/** `sluice serve`: returns -1 (keep running) once the service has been started. */
export const serveCommand: Command = {
  name: "serve",
  options: { policy: { type: "string" } },
  async run(ctx, positionals, values) {
    expectPositionals("serve", positionals, []);
    // The service reads its settings from the environment; the flags are a shorthand for them.
    if (ctx.global.server !== undefined) process.env.NATS_URL = ctx.global.server;
    if (ctx.global.prefix !== undefined) process.env.SLUICE_PREFIX = ctx.global.prefix;
    const policy = str(values, "policy");
    if (policy !== undefined) process.env.SLUICE_POLICY = policy;
    // Importing main starts it; from then on it owns the process (signals, exit codes).
    await import("../../main.js");
    return -1;
  },
};
