// `vio4wd relay ls|add|rm|query-pci`: clients of the agent's port-control and stats endpoints,
// speaking virtio-forwarder's protocol (so they work against virtio-forwarder too).
import { examples } from '../help.js';
import { Command, InvalidArgumentError } from 'commander';
import {
  PortControlRequest_Op as Op,
  PortControlResponse_Status,
  errnoName,
  formatPci,
  parsePci,
  type PortControlRequest,
  type PortControlRequest_PciAddress,
  type PortControlResponse,
} from '../../control/index.js';
import { ValidationError, VioError, remoteErrorCode } from '../../util/errors.js';
import {
  checkStats,
  clientFor,
  clientOptions,
  collect,
  intArg,
  relaysJSON,
  table,
  type ClientFlags,
} from './stats.js';

function pciArg(v: string): PortControlRequest_PciAddress {
  const a = parsePci(v);
  if (!a) throw new InvalidArgumentError(`"${v}" is not a PCI address like 0000:05:08.1`);
  return a;
}

interface PortFlags extends ClientFlags {
  pci: PortControlRequest_PciAddress[];
  id?: number;
  socket?: string;
  bondName?: string;
  bondMode?: number;
  strict?: boolean;
}

/** Turns an ERROR reply into an error that names the errno and what the agent said. */
function checkPort(res: PortControlResponse, what: string): PortControlResponse {
  if (res.status === PortControlResponse_Status.OK) return res;
  const code = res.error_code !== undefined ? errnoName(res.error_code) : 'ERROR';
  throw new VioError(remoteErrorCode(code), `${what} refused by the agent: ${res.error_code_source ?? 'no reason given'}`);
}

function portRequest(op: 'add' | 'rm', f: PortFlags): PortControlRequest {
  const req: PortControlRequest = { op: Op.ADD, pci_addrs: f.pci, conditional: !f.strict };
  if (f.socket !== undefined) {
    if (!f.socket.startsWith('/')) throw new ValidationError('--socket', `"${f.socket}" is not an absolute path`);
    req.op = op === 'add' ? Op.ADD_SOCK : Op.REMOVE_SOCK;
    req.vhost_path = f.socket;
    if (f.id !== undefined) process.stderr.write('vio4wd: warning: --id is ignored with --socket (a dynamic socket is paired with VFs, not a relay number)\n');
  } else {
    if (f.id === undefined) throw new ValidationError('--id', 'give the relay number (or --socket PATH for a dynamic socket)');
    req.op = op === 'add' ? Op.ADD : Op.REMOVE;
    req.virtio_id = f.id;
  }
  if (op === 'add' && f.pci.length === 0) throw new ValidationError('--pci', 'give the VF\'s PCI address (repeat --pci to bond several)');
  if (op === 'rm' && f.pci.length === 0 && f.bondName === undefined) throw new ValidationError('--pci', 'give the VF\'s PCI address, or --bond-name for a bond');
  if (f.bondName !== undefined) req.name = f.bondName;
  if (f.bondMode !== undefined) {
    if (f.pci.length < 2) throw new ValidationError('--bond-mode', 'a bond mode needs two or more --pci addresses');
    req.mode = f.bondMode;
  }
  return req;
}

function portCommand(op: 'add' | 'rm'): Command {
  const cmd = new Command(op)
    .description(
      op === 'add'
        ? 'attach a VF (or a bond of VFs) to a relay, or pair a dynamic socket with VFs'
        : 'detach a VF or bond from a relay, or unpair a dynamic socket',
    )
    .option('--pci <address>', 'VF PCI address, e.g. 0000:05:08.1 (repeat to bond several)', collect(pciArg), [])
    .option('--id <n>', 'relay number', intArg('--id'))
    .option('--socket <path>', 'vhost-user socket path (dynamic sockets) instead of a relay number')
    .option('--bond-name <name>', 'bond device name (two or more --pci)')
    .option('--strict', 'fail when the request would change nothing (conditional=false)');
  if (op === 'add') cmd.option('--bond-mode <mode>', 'bond mode 0..6 (default 1, active-backup)', intArg('--bond-mode', 0, 6));
  cmd.addHelpText(
    'after',
    op === 'add'
      ? examples('vio4wd relay add --id 3 --pci 0000:05:08.1', 'vio4wd relay add --id 4 --pci 0000:05:08.2 --pci 0000:85:08.2 --bond-name bond4 --bond-mode 1', 'vio4wd relay add --socket /tmp/virtio-forwarder/vm7.sock --pci 0000:05:08.3')
      : examples('vio4wd relay rm --id 3 --pci 0000:05:08.1', 'vio4wd relay rm --id 4 --bond-name bond4', 'vio4wd relay rm --socket /tmp/virtio-forwarder/vm7.sock --pci 0000:05:08.3'),
  );
  clientOptions(cmd, 'port control');
  cmd.action(async (f: PortFlags) => {
    const req = portRequest(op, f);
    checkPort(await clientFor(f, 'portControl').portControl(req), `relay ${op}`);
    if (f.json) {
      process.stdout.write(JSON.stringify({ status: 'OK' }) + '\n');
      return;
    }
    const what = f.bondName ?? f.pci.map(formatPci).join(', ');
    const target = f.socket !== undefined ? `socket ${f.socket}` : `relay ${f.id}`;
    process.stdout.write(op === 'add' ? `${target}: added ${what}\n` : `${target}: removed ${what}\n`);
  });
  return cmd;
}

export function register(program: Command): void {
  const relay = new Command('relay')
    .description("list, add and remove relays through the agent's ZeroMQ control endpoints")
    .addHelpText('after', examples('vio4wd relay ls', 'vio4wd relay add --id 3 --pci 0000:05:08.1', 'vio4wd relay rm --id 3 --pci 0000:05:08.1', 'vio4wd relay add --help'));

  const ls = new Command('ls').description('list relays (from the stats endpoint)').option('--active-only', 'only fully active relays');
  ls.addHelpText('after', examples('vio4wd relay ls', 'vio4wd relay ls --active-only --json', 'vio4wd relay ls --ipc-dir /var/run/virtio-forwarder'));
  clientOptions(ls, 'stats');
  ls.action(async (f: ClientFlags & { activeOnly?: boolean }) => {
    const res = await clientFor(f, 'stats').stats({ include_inactive: !f.activeOnly });
    const relays = checkStats(res);
    if (f.json) {
      process.stdout.write(JSON.stringify(relaysJSON(res)) + '\n');
      return;
    }
    if (relays.length === 0) {
      process.stdout.write('no relays\n');
      return;
    }
    process.stdout.write(
      table(
        ['ID', 'ACTIVE', 'VF', 'SOCKET', 'NUMA', 'CPUS', 'VF->VM', 'VM->VF', 'IDENT'],
        relays.map((r) => [
          String(r.id),
          r.active ? 'yes' : 'no',
          r.vf?.pci_addr_str || '-',
          r.vhost.vhost_socket_name || '-',
          String(r.socket_id),
          `${r.cpu?.vf_to_vm ?? '-'}/${r.cpu?.vm_to_vf ?? '-'}`,
          r.vf_to_vm.internal_state,
          r.vm_to_vf.internal_state,
          r.ident || '-',
        ]),
      ),
    );
  });

  const query = new Command('query-pci')
    .description('print the PCI address of the VF relayed to a vhost-user socket')
    .requiredOption('--socket <path>', 'vhost-user socket path');
  query.addHelpText('after', examples('vio4wd relay query-pci --socket /tmp/virtio-forwarder/virtio-forwarder3.sock'));
  clientOptions(query, 'port control');
  query.action(async (f: ClientFlags & { socket: string }) => {
    const res = checkPort(await clientFor(f, 'portControl').portControl({ op: Op.QUERY_PCI, vhost_path: f.socket }), 'query-pci');
    process.stdout.write(f.json ? JSON.stringify({ socket: f.socket, pci: res.query_string ?? '' }) + '\n' : `${res.query_string ?? ''}\n`);
  });

  relay.addCommand(ls);
  relay.addCommand(portCommand('add'));
  relay.addCommand(portCommand('rm'));
  relay.addCommand(query);
  program.addCommand(relay);
}
