/** The help texts: one synopsis per command, for usage errors, and a page per command for `--help`. */

/** One-line synopsis of each command. */
export const SYNOPSIS: Record<string, string> = {
  serve: "sluice serve [--policy <file>]",
  admit: "sluice admit <key> <model> [--tokens n] [--cost c] [--scope kind=value ...] [--wait ms] [--id id]",
  report: "sluice report <lease> <outcome> [--tokens n] [--cost c] [--key k] [--model m] [--ttft ms] [--itl ms] [--latency ms] [--retry-after ms]",
  inspect: "sluice inspect <kind:value>",
  ls: "sluice ls [prefix] [--limit n]",
  watch: "sluice watch [admit|reject|<model>] [--decision admit|reject] [--model m] [--count n] [--inspect]",
  policy: "sluice policy get | sluice policy set <file|->",
  reset: "sluice reset <kind:value> [--what breaker|usage|all]",
};

const GLOBAL = `Global options:
  -s, --server <url>   NATS server(s), comma-separated (default: $NATS_URL, or 127.0.0.1:4222)
      --prefix <p>     subject prefix sluice serves under (default: $SLUICE_PREFIX, or sluice)
      --timeout <ms>   request timeout (default 5000)
      --json           print replies as JSON, one object per line
  -h, --help           show help (also: sluice <command> --help)
NATS credentials and TLS come from NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_TLS_*.`;

/** `sluice --help`. */
export const MAIN_HELP = `sluice: admission control for rate-limited upstream APIs, over NATS

Usage: sluice <command> [arguments] [options]

Commands:
  serve     run the sluice service (same as npm start)
  admit     ask for an admission; prints the decision
  report    report the outcome of an admitted call
  inspect   show a scope's state, usage and effective policy
  ls        list live scopes
  watch     live tail of decisions (or of inspection events)
  policy    get or replace the policy document
  reset     reset a scope's breaker, usage or both

${GLOBAL}

Exit codes: 0 done, 1 failed (error reply, NATS unreachable), 2 bad command line,
3 admit was answered with a rejection.`;

/** `sluice <command> --help`. */
export const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: ${SYNOPSIS.serve}

Run sluice in this process, exactly as \`npm start\`. --server sets NATS_URL (without
it: $NATS_URL, or a nats-server on 127.0.0.1:4222, or one started locally), --prefix
sets SLUICE_PREFIX, --policy sets SLUICE_POLICY. Stops on SIGTERM/SIGINT.`,
  admit: `Usage: ${SYNOPSIS.admit}

Ask for one admission for <key> on <model> and print the decision with its limits.
  --tokens n           estimated tokens (default 0)
  --cost c             estimated cost (default 0)
  --scope kind=value   a further scope to count against; repeatable
  --wait ms            wait up to ms in sluice's queue for room (default 0)
  --id id              idempotency id
Exit code 0 when admitted, 3 when rejected.`,
  report: `Usage: ${SYNOPSIS.report}

Report the outcome of an admitted call and print the acknowledgement.
<outcome> is ok, rate_limited, error, timeout or cancelled.
  --tokens n, --cost c      actual usage (default: the admission's estimate)
  --key k, --model m        name them so that a report for an expired lease still counts
  --ttft ms, --itl ms       time to first token, inter-token latency
  --latency ms              total latency
  --retry-after ms          the upstream's Retry-After, with rate_limited`,
  inspect: `Usage: ${SYNOPSIS.inspect}

Show a scope (for example key:acme-prod or model:gpt-4o): whether it is live, its
state, its limits with what remains, and its effective policy (with --json: all of it).`,
  ls: `Usage: ${SYNOPSIS.ls}

List live scopes whose name starts with prefix (for example key: or model:gpt),
one per line with its state.
  --limit n   at most n scopes (1-10000, default 1000)`,
  watch: `Usage: ${SYNOPSIS.watch}

Print every decision as it is made, one line each: time, decision, reason, key,
model, then the lease (admit) or the refusing scope and retry time (reject).
Admissions are green and rejections red on a terminal. Runs until interrupted.
  admit|reject, --decision d   only admissions or only rejections
  <model>, --model m           only this model
  --count n                    stop after n lines
  --inspect                    print XState inspection events of the scope actors instead
                               (published on <prefix>.inspect.events.> only when sluice
                               runs with inspection enabled; silent otherwise)`,
  policy: `Usage: ${SYNOPSIS.policy}

policy get         print the policy document in force
policy set <file>  replace it with the JSON document in <file> (- reads standard
                   input); refused with the first bad field if it does not validate`,
  reset: `Usage: ${SYNOPSIS.reset}

Reset a scope: breaker closes its breaker, usage refills its buckets and zeroes its
budget, all (default) does both and clears pacing and latency averages.`,
};

export { GLOBAL as GLOBAL_HELP };
