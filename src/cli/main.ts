// Entry point of the `vio4wd` command: each role registers its own subcommands.
import { Command, CommanderError } from 'commander';
import { VERSION } from '../util/version.js';
import { isVirtioForwarderCommandLine } from '../agent/config/vfwd-args.js';
import { errorMessage, VioError } from '../util/errors.js';
import { register as registerAgent } from './commands/agent.js';
import { register as registerCni } from './commands/cni.js';
import { register as registerDoctor } from './commands/doctor.js';
import { register as registerKubevirtSidecar } from './commands/kubevirt-sidecar.js';
import { register as registerOperator } from './commands/operator.js';
import { register as registerRelay } from './commands/relay.js';
import { register as registerStats } from './commands/stats.js';

export type Register = (program: Command) => void;

const roles: Register[] = [registerAgent, registerCni, registerDoctor, registerKubevirtSidecar, registerOperator, registerRelay, registerStats];

export function buildProgram(): Command {
  const program = new Command('vio4wd')
    .description('Kubernetes-native virtio-forwarder: DPDK relays between SR-IOV VFs and vhost-user sockets')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', "\nvirtio-forwarder's own command line works too (as its systemd unit and start script pass it):\n  vio4wd -C1,2 --nodaemon=log_syslog -l6 --zmq-port-control-ep=ipc:///var/run/virtio-forwarder/port_control -P0000:05:08.1=1")
    .exitOverride();
  for (const register of roles) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    const args = argv.slice(2);
    if (isVirtioForwarderCommandLine(args)) {
      // virtio-forwarder's daemon command line (VIRTIOFWD_BINARY=vio4wd in its start script)
      const { runVirtioForwarderCommandLine } = await import('./commands/virtio-forwarder.js');
      await runVirtioForwarderCommandLine(args);
      return typeof process.exitCode === 'number' ? process.exitCode : 0;
    }
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const code = err instanceof VioError ? ` [${err.code}]` : '';
    process.stderr.write(`vio4wd: ${errorMessage(err)}${code}\n`);
    return 1;
  }
}
