/** `sluice inspect <scope>` and `sluice ls [prefix]`. */
import { type Command, expectPositionals, num } from "../command.js";
import { formatInspection } from "../format.js";
import { UsageError } from "../io.js";

/** `sluice inspect <scope>`. */
export const inspectCommand: Command = {
  name: "inspect",
  options: {},
  async run(ctx, positionals) {
    expectPositionals("inspect", positionals, ["kind:value"]);
    const scope = positionals[0]!;
    if (!/^[a-z][a-z0-9_-]{0,63}:./s.test(scope)) throw new UsageError(`inspect: ${JSON.stringify(scope)}: expected a scope such as key:acme or model:gpt-4o`, "inspect");
    const s = await (await ctx.sluice()).inspect(scope);
    ctx.print(s, formatInspection);
    return 0;
  },
};

/** `sluice ls [prefix]`. */
export const lsCommand: Command = {
  name: "ls",
  options: { limit: { type: "string" } },
  async run(ctx, positionals, values) {
    expectPositionals("ls", positionals, ["prefix"], 1);
    const limit = num(values, "limit");
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 10_000)) {
      throw new UsageError("ls: --limit: expected an integer from 1 to 10000", "ls");
    }
    const list = await (await ctx.sluice()).list(positionals[0] ?? "", limit === undefined ? {} : { limit });
    ctx.print(list, (l) => l.scopes.map((s) => `${s.scope} ${typeof s.state === "string" ? s.state : JSON.stringify(s.state)}`).join("\n"));
    if (list.truncated && !ctx.global.json) ctx.io.stderr.write(`(more scopes match; raise --limit)\n`);
    return 0;
  },
};
