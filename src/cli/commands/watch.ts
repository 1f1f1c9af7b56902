/** `sluice watch`: a live tail of decisions (or, with `--inspect`, of inspection events), one line each. */
import { decodeSubjectToken } from "../../protocol/subjectToken.js";
import { type Command, expectPositionals, num, str } from "../command.js";
import type { CommandContext } from "../context.js";
import { formatDecisionEvent } from "../format.js";
import { UsageError } from "../io.js";

/** `sluice watch`. */
export const watchCommand: Command = {
  name: "watch",
  options: {
    decision: { type: "string" },
    model: { type: "string" },
    count: { type: "string" },
    inspect: { type: "boolean" },
  },
  async run(ctx, positionals, values) {
    expectPositionals("watch", positionals, ["filter"], 1);
    let decision = str(values, "decision");
    let model = str(values, "model");
    const filter = positionals[0];
    // A bare filter is a decision when it names one, otherwise a model; given twice, it is ambiguous.
    if (filter === "admit" || filter === "reject") {
      if (decision !== undefined && decision !== filter) throw new UsageError(`watch: ${filter} and --decision ${decision}: give one`, "watch");
      decision = filter;
    } else if (filter !== undefined) {
      if (model !== undefined && model !== filter) throw new UsageError(`watch: ${filter} and --model ${model}: give one`, "watch");
      model = filter;
    }
    if (decision !== undefined && decision !== "admit" && decision !== "reject") {
      throw new UsageError(`watch: --decision: expected admit or reject (got ${JSON.stringify(decision)})`, "watch");
    }
    const count = num(values, "count");
    if (count !== undefined && !(Number.isInteger(count) && count >= 1)) throw new UsageError("watch: --count: expected a positive integer", "watch");
    if (values.inspect === true) return watchInspection(ctx, count);

    const feed = (await ctx.sluice()).decisions({ decision: decision as "admit" | "reject" | undefined, model });
    return tail(ctx, count, (line) => {
      const sub = feed.subscribe({
        next: (ev) => line(ctx.global.json ? JSON.stringify(ev) : formatDecisionEvent(ev, ctx.paint)),
        error: (e: unknown) => line(undefined, e),
        complete: () => line(undefined),
      });
      return { ready: feed.ready(), stop: () => sub.unsubscribe(), subject: feed.subject };
    });
  },
};

async function watchInspection(ctx: CommandContext, count: number | undefined): Promise<number> {
  const nc = await ctx.connection();
  const subject = `${ctx.prefix}.inspect.events.>`;
  const base = subject.length - 1;
  ctx.io.stderr.write(
    `(inspection events are published only when sluice runs with inspection enabled; not available otherwise, and this stays silent)\n`,
  );
  return tail(ctx, count, (line) => {
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return line(undefined, err);
        // <p>.inspect.events.<kind>.<value> → kind:value
        const [kind, value] = msg.subject.slice(base).split(".");
        let scope = msg.subject.slice(base);
        try {
          if (kind !== undefined && value !== undefined) scope = `${kind}:${decodeSubjectToken(value)}`;
        } catch {
          // Not our encoding: show the subject as it is.
        }
        const body = msg.string();
        line(ctx.global.json ? JSON.stringify({ scope, event: safeJson(body) }) : `${new Date().toISOString()} ${scope} ${body}`);
      },
    });
    return { ready: nc.flush(), stop: () => sub.unsubscribe(), subject };
  });
}

/**
 * Print lines until interrupted, until `count` lines, or until the source ends;
 * exit code 0, or 1 if the source failed.
 */
function tail(
  ctx: CommandContext,
  count: number | undefined,
  start: (line: (text: string | undefined, err?: unknown) => void) => { ready: Promise<void>; stop: () => void; subject: string },
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let printed = 0;
    let finished = false;
    const finish = (code: number, err?: unknown) => {
      if (finished) return;
      finished = true;
      offInterrupt();
      source.stop();
      if (err !== undefined) reject(err);
      else resolve(code);
    };
    const offInterrupt = ctx.io.onInterrupt(() => finish(0));
    const source = start((text, err) => {
      if (finished) return;
      if (text === undefined) return finish(err === undefined ? 0 : 1, err);
      ctx.out(text);
      if (count !== undefined && ++printed >= count) finish(0);
    });
    source.ready.then(
      () => {
        if (!finished) ctx.io.stderr.write(`watching ${source.subject}\n`);
      },
      (e: unknown) => finish(1, e),
    );
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
