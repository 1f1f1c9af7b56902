/** `sluice reset <scope> [--what breaker|usage|all]`. */
import { describeZodError, resetRequestSchema } from "../../protocol/schemas.js";
import { type Command, expectPositionals, str } from "../command.js";
import { UsageError } from "../io.js";

/** `sluice reset`. */
export const resetCommand: Command = {
  name: "reset",
  options: { what: { type: "string" } },
  async run(ctx, positionals, values) {
    expectPositionals("reset", positionals, ["kind:value"]);
    const r = resetRequestSchema.safeParse({ scope: positionals[0], what: str(values, "what") });
    if (!r.success) throw new UsageError(`reset: ${describeZodError(r.error).replace(/^what:/, "--what:")}`, "reset");
    await (await ctx.sluice()).reset(r.data.scope, r.data.what);
    ctx.print({ ok: true, scope: r.data.scope, what: r.data.what }, (v) => `reset ${v.scope} (${v.what})`);
    return 0;
  },
};
