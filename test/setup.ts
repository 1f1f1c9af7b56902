import fc from "fast-check";

// Property tests are deterministic: one fixed seed unless FC_SEED asks for another.
fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261123), numRuns: Number(process.env.FC_RUNS ?? 100) });
