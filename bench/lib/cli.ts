/**
 * Tiny flag parser shared by the bench programs: `--name=value`, `--name value`
 * and bare `--flag` (true). Positional arguments are kept in `_`.
 */

export interface Flags {
  readonly _: string[];
  readonly values: Map<string, string | true>;
}

export class FlagError extends Error {
  override readonly name = "FlagError";
}

export function parseFlags(argv: readonly string[], booleans: readonly string[] = []): Flags {
  const values = new Map<string, string | true>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    if (eq >= 0) {
      values.set(arg.slice(2, eq), arg.slice(eq + 1));
      continue;
    }
    const name = arg.slice(2);
    const next = argv[i + 1];
    if (!booleans.includes(name) && next !== undefined && !next.startsWith("--")) {
      values.set(name, next);
      i++;
    } else values.set(name, true);
  }
  return { _: rest, values };
}

export function flagString(flags: Flags, name: string, fallback: string): string;
export function flagString(flags: Flags, name: string, fallback?: string): string | undefined;
export function flagString(flags: Flags, name: string, fallback?: string): string | undefined {
  const v = flags.values.get(name);
  if (v === undefined) return fallback;
  if (v === true) throw new FlagError(`--${name}: expected a value`);
  return v;
}

/** A non-negative integer flag (accepts `5000`, `5_000`, `5e3`, `5s`, `500ms`). */
export function flagInt(flags: Flags, name: string, fallback: number, min = 0): number {
  const raw = flagString(flags, name);
  if (raw === undefined) return fallback;
  const m = /^([0-9][0-9_.e+]*)(ms|s)?$/i.exec(raw.trim());
  const n = m ? Number(m[1]!.replaceAll("_", "")) * (m[2]?.toLowerCase() === "s" ? 1000 : 1) : Number.NaN;
  if (!Number.isFinite(n) || !Number.isInteger(n) || n < min) throw new FlagError(`--${name}=${raw}: expected an integer >= ${min}`);
  return n;
}

export function flagBool(flags: Flags, name: string): boolean {
  const v = flags.values.get(name);
  if (v === undefined) return false;
  if (v === true) return true;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new FlagError(`--${name}=${v}: expected true or false`);
}

/** A comma-separated list flag. */
export function flagList(flags: Flags, name: string, fallback: readonly string[]): string[] {
  const raw = flagString(flags, name);
  if (raw === undefined) return [...fallback];
  return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Refuse flags nobody asked for (typos must not silently run the default bench). */
export function rejectUnknown(flags: Flags, known: readonly string[]): void {
  for (const name of flags.values.keys()) {
    if (!known.includes(name)) throw new FlagError(`--${name}: unknown flag (known: ${known.map((k) => `--${k}`).join(", ")})`);
  }
  if (flags._.length > 0) throw new FlagError(`unexpected argument ${JSON.stringify(flags._[0])}`);
}
