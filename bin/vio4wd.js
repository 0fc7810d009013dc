#!/usr/bin/env node
// Installed command: runs the compiled CLI (npm run build, or scripts/bootstrap, makes dist/).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
