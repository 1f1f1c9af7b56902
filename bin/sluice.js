#!/usr/bin/env node
// The `sluice` command. Its code is compiled to dist/ (npm run build).
import { main } from "../dist/src/cli/main.js";

await main();
