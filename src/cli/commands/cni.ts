// `vio4wd cni`: the CNI plugin under the main command (as bin/vio4wd-cni.js), and
// `vio4wd cni install`, which puts it into a node's CNI binary directory.
import type { Command } from 'commander';
import { cniMain } from '../../cni/main.js';
import { installPlugin } from '../../cni/install.js';
import { examples } from '../help.js';

export function register(program: Command): void {
  const cni = program
    .command('cni')
    .description('run as the vio4wd CNI plugin (CNI_COMMAND and the other CNI_* variables in the environment, the network config on stdin)')
    .addHelpText('after', examples('vio4wd cni install --dir /opt/cni/bin', 'CNI_COMMAND=VERSION vio4wd cni < /dev/null   # what a container runtime does'))
    .action(async () => {
      process.exitCode = await cniMain();
    });
  cni
    .command('install')
    .description('install the CNI plugin (with the node executable it runs on) into a CNI binary directory')
    .requiredOption('--dir <dir>', 'the CNI binary directory, e.g. /opt/cni/bin or its host mount')
    .option('--run-dir <dir>', 'where the node sees that directory, when it differs from --dir (e.g. /opt/cni/bin)')
    .option('--name <name>', 'file name = the network config\'s "type"', 'vio4wd')
    .addHelpText('after', examples('vio4wd cni install --dir /opt/cni/bin', 'vio4wd cni install --dir /host/opt/cni/bin --run-dir /opt/cni/bin'))
    .action(async (o: { dir: string; runDir?: string; name: string }) => {
      const r = await installPlugin({ dir: o.dir, name: o.name, ...(o.runDir ? { runDir: o.runDir } : {}) });
      process.stdout.write(`${r.copied ? 'installed' : 'up to date:'} ${r.wrapper}\n`);
    });
}
