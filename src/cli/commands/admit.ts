/** `sluice admit <key> <model>`: one admission, printed with its limits; exit 3 on a rejection. */
import { admitRequestSchema, describeZodError } from "../../protocol/schemas.js";
import { type Command, expectPositionals, num, str } from "../command.js";
import { formatDecision } from "../format.js";
import { EXIT, UsageError } from "../io.js";

/** `sluice admit`. */
export const admitCommand: Command = {
  name: "admit",
  options: {
    tokens: { type: "string" },
    cost: { type: "string" },
    scope: { type: "string", multiple: true },
    wait: { type: "string" },
    id: { type: "string" },
  },
  async run(ctx, positionals, values) {
    expectPositionals("admit", positionals, ["key", "model"]);
    const [key, model] = positionals as [string, string];
    const scopes: Record<string, string> = {};
    for (const s of (values.scope as string[] | undefined) ?? []) {
      const eq = s.indexOf("=");
      if (eq <= 0) throw new UsageError(`admit: --scope ${JSON.stringify(s)}: expected kind=value`, "admit");
      scopes[s.slice(0, eq)] = s.slice(eq + 1);
    }
    const req = { key, model, tokens: num(values, "tokens"), cost: num(values, "cost"), scopes, waitMs: num(values, "wait"), id: str(values, "id") };
    // Checked here so that a bad argument is a usage error (exit 2), not a failed request.
    const r = admitRequestSchema.safeParse(Object.fromEntries(Object.entries(req).filter(([, v]) => v !== undefined)));
    if (!r.success) throw new UsageError(`admit: ${describeZodError(r.error).replace(/^waitMs:/, "--wait:")}`, "admit");
    const d = await (await ctx.sluice()).admit(r.data);
    ctx.print(d, (v) => formatDecision(v, ctx.paint));
    return d.decision === "admit" ? EXIT.ok : EXIT.rejected;
  },
};
