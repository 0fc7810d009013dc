// `vio4wd doctor`: the CLI face of src/doctor.
import { Command, InvalidArgumentError } from 'commander';
import { exitStatus, formatReport, hugepagesForRelays, runDoctor } from '../../doctor/index.js';
import { loadConfigFile, resolveConfig } from '../../agent/config/load.js';
import { MAX_RELAYS } from '../../util/limits.js';
import { examples } from '../help.js';

export interface DoctorCliOptions {
  json?: boolean;
  root?: string;
  relays?: number;
  config?: string;
}

/** Runs the checks, writes the report, returns the exit status (1 on any FAIL). */
export async function doctorCommand(opts: DoctorCliOptions, write: (s: string) => void): Promise<number> {
  let relays = opts.relays;
  let relaysFrom = '--relays';
  let sizing: Parameters<typeof hugepagesForRelays>[1] = {};
  if (opts.config) {
    const cfg = resolveConfig((await loadConfigFile(opts.config)).config);
    // the pool's step and ring sizes of that agent
    const e = cfg.engine;
    sizing = {
      workers: e.workerCpus.length,
      ...(e.poolQueuePairs !== undefined ? { poolQueuePairs: e.poolQueuePairs } : {}),
      ...(e.rxDescriptors !== undefined ? { rxDescriptors: e.rxDescriptors } : {}),
      ...(e.txDescriptors !== undefined ? { txDescriptors: e.txDescriptors } : {}),
      ...(e.jumbo !== undefined ? { jumbo: e.jumbo } : {}),
    };
    if (relays === undefined) {
      relays = cfg.relays.length;
      relaysFrom = opts.config;
    }
  }
  if (relays === undefined) {
    relays = 1;
    relaysFrom = 'default';
  }
  const report = await runDoctor({ root: opts.root ?? '/', relays, relaysFrom, hugepagesForRelays: (n) => hugepagesForRelays(n, sizing) });
  write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
  return exitStatus(report);
}

function relayCount(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > MAX_RELAYS) throw new InvalidArgumentError(`give a whole number from 0 to ${MAX_RELAYS}`);
  return Number(v);
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check this host for what vio4wd needs (DPDK, hugepages, IOMMU, vfio-pci, SR-IOV, CPU isolation); exit 1 on any FAIL')
    .option('--json', 'print the report as JSON')
    .option('--root <dir>', 'read proc/, sys/ and the DPDK files under this directory instead of /', '/')
    .option('--relays <n>', 'relays to size hugepages for (default: those in --config, else 1)', relayCount)
    .option('--config <file>', 'agent config (YAML or /etc/default/virtioforwarder style) whose relays to size hugepages for')
    .addHelpText('after', examples('vio4wd doctor', 'vio4wd doctor --config /etc/default/virtioforwarder', 'vio4wd doctor --relays 256 --json'))
    .action(async (opts: DoctorCliOptions) => {
      process.exitCode = await doctorCommand(opts, (s) => process.stdout.write(s));
    });
}
