// Entry point of the `vio4wd` command: each role registers its own subcommands.
import { Command, CommanderError } from 'commander';
import { VERSION } from '../util/version.js';
import { isVirtioForwarderCommandLine } from '../agent/config/vfwd-args.js';
import { errorMessage, VioError } from '../util/errors.js';

export type Register = (program: Command) => void;

// Each role's commands load only when that command runs (or for --help): `vio4wd agent` does
// not load the operator's or the sidecar's modules, which would add ~0.2 s to every restart.
const roles: Record<string, () => Promise<{ register: Register }>> = {
  agent: () => import('./commands/agent.js'),
  cni: () => import('./commands/cni.js'),
  doctor: () => import('./commands/doctor.js'),
  'kubevirt-sidecar': () => import('./commands/kubevirt-sidecar.js'),
  operator: () => import('./commands/operator.js'),
  relay: () => import('./commands/relay.js'),
  stats: () => import('./commands/stats.js'),
};

/** The CLI; with `only` (a command name), just that role's commands. */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('vio4wd')
    .description('Kubernetes-native virtio-forwarder: DPDK relays between SR-IOV VFs and vhost-user sockets')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', "\nvirtio-forwarder's own command line works too (as its systemd unit and start script pass it):\n  vio4wd -C1,2 --nodaemon=log_syslog -l6 --zmq-port-control-ep=ipc:///var/run/virtio-forwarder/port_control -P0000:05:08.1=1")
    .exitOverride();
  const names = only !== undefined && Object.hasOwn(roles, only) ? [only] : Object.keys(roles);
  for (const role of await Promise.all(names.map((n) => roles[n]!()))) role.register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const args = argv.slice(2);
  try {
    if (isVirtioForwarderCommandLine(args)) {
      // virtio-forwarder's daemon command line (VIRTIOFWD_BINARY=vio4wd in its start script)
      const { runVirtioForwarderCommandLine } = await import('./commands/virtio-forwarder.js');
      await runVirtioForwarderCommandLine(args);
      return typeof process.exitCode === 'number' ? process.exitCode : 0;
    }
    const program = await buildProgram(args[0]);
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const code = err instanceof VioError ? ` [${err.code}]` : '';
    process.stderr.write(`vio4wd: ${errorMessage(err)}${code}\n`);
    return 1;
  }
}
