// `vio4wd cni`: the CNI plugin under the main command (the same as bin/vio4wd-cni.js).
import type { Command } from 'commander';
import { cniMain } from '../../cni/main.js';

export function register(program: Command): void {
  program
    .command('cni')
    .description('run as the vio4wd CNI plugin (CNI_COMMAND and the other CNI_* variables in the environment, the network config on stdin)')
    .action(async () => {
      process.exitCode = await cniMain();
    });
}
