/** `sluice report <lease> <outcome>`: report an outcome and print the acknowledgement. */
import { describeZodError, reportSchema } from "../../protocol/schemas.js";
import { type Command, expectPositionals, num, str } from "../command.js";
import { UsageError } from "../io.js";

/** `sluice report`. */
export const reportCommand: Command = {
  name: "report",
  options: {
    tokens: { type: "string" },
    cost: { type: "string" },
    key: { type: "string" },
    model: { type: "string" },
    ttft: { type: "string" },
    itl: { type: "string" },
    latency: { type: "string" },
    "retry-after": { type: "string" },
  },
  async run(ctx, positionals, values) {
    expectPositionals("report", positionals, ["lease", "outcome"]);
    const [lease, outcome] = positionals as [string, string];
    const input = {
      lease,
      outcome,
      key: str(values, "key"),
      model: str(values, "model"),
      tokens: num(values, "tokens"),
      cost: num(values, "cost"),
      ttftMs: num(values, "ttft"),
      itlMs: num(values, "itl"),
      latencyMs: num(values, "latency"),
      retryAfterMs: num(values, "retry-after"),
    };
    const r = reportSchema.safeParse(Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)));
    if (!r.success) throw new UsageError(`report: ${describeZodError(r.error)}`, "report");
    const ack = await (await ctx.sluice()).report(r.data);
    ctx.print(ack, (a) => `reported ${a.status}`);
    return 0;
  },
};
