/** The shape of a CLI command, and the helpers commands share to read their arguments. */
import type { ParseArgsConfig } from "node:util";
import type { CommandContext } from "./context.js";
import { UsageError } from "./io.js";

/** Parsed option values of one command line. */
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** One `sluice <command>`. */
export interface Command {
  /** Its name on the command line. */
  name: string;
  /** Its own options (the global ones are added). */
  options: NonNullable<ParseArgsConfig["options"]>;
  /** Run with the positionals after the command name; resolves with the exit code. */
  run(ctx: CommandContext, positionals: string[], values: OptionValues): Promise<number>;
}

/** Exactly `min`…`max` positionals, or a usage error naming what is missing or extra. */
export function expectPositionals(command: string, positionals: string[], names: string[], optional = 0): void {
  const min = names.length - optional;
  if (positionals.length < min) throw new UsageError(`${command}: missing ${names.slice(positionals.length, min).map((n) => `<${n}>`).join(" ")}`, command);
  if (positionals.length > names.length) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals[names.length])}`, command);
}

/** A string option. */
export function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * A numeric option, or undefined if absent. Text that is not a number is
 * passed on as NaN, so that the request schema names the field in its error.
 */
export function num(values: OptionValues, name: string): number | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  return /^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v) ? Number(v) : Number.NaN;
}
