import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests each start their own nats-server; two cores, so keep parallelism modest.
    maxWorkers: 2,
  },
});
