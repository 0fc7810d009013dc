#!/usr/bin/env node
// vio4wd-cni, the CNI plugin: the agent's chart copies it (with dist/) into /opt/cni/bin. It
// loads only the plugin, not the whole CLI, because the runtime starts it for every pod.
import { cniMain } from '../dist/cni/main.js';

process.exitCode = await cniMain();
