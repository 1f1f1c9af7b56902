/** `sluice policy get` and `sluice policy set <file>`. */
import type { PolicyDocument } from "../../../machines/policy.js";
import { type Command, expectPositionals } from "../command.js";
import { CliFailure } from "../context.js";
import { UsageError } from "../io.js";

/** `sluice policy get|set`. */
export const policyCommand: Command = {
  name: "policy",
  options: {},
  async run(ctx, positionals) {
    const [verb, ...rest] = positionals;
    if (verb === "get") {
      expectPositionals("policy", rest, []);
      const doc = await (await ctx.sluice()).policy.get();
      ctx.print(doc, (d) => JSON.stringify(d, null, 2));
      return 0;
    }
    if (verb === "set") {
      expectPositionals("policy", rest, ["file"]);
      const file = rest[0]!;
      let text: string;
      try {
        text = await ctx.io.readFile(file);
      } catch (e) {
        throw new CliFailure(`policy set: cannot read ${file}: ${(e as Error).message}`);
      }
      let doc: PolicyDocument;
      try {
        doc = JSON.parse(text) as PolicyDocument;
      } catch (e) {
        throw new CliFailure(`policy set: ${file} is not valid JSON: ${(e as Error).message}`);
      }
      await (await ctx.sluice()).policy.set(doc);
      ctx.print({ ok: true }, () => "policy replaced");
      return 0;
    }
    throw new UsageError(verb === undefined ? "policy: missing get or set" : `policy: unknown subcommand ${JSON.stringify(verb)}`, "policy");
  },
};
