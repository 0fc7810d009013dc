// virtio-forwarder's command line (as its systemd unit and start script pass it) read into the
// same variables its settings file holds, so that `vio4wd -C1,2 --nodaemon=log_syslog ...`
// means what `virtio-forwarder -C1,2 ...` means. Parsed like getopt_long: -Xvalue, -X value,
// --name=value, --name value; options with an optional value take it only attached.
import { ValidationError } from '../../util/errors.js';
import type { EnvParseResult } from './envfile.js';
import { formatPciAddress, pciFields } from '../../util/identifiers.js';

type Arity = 'none' | 'required' | 'optional';

interface VfwdOption {
  long: string;
  short: string;
  arity: Arity;
  /** The settings variable the start script derives the option from. */
  variable?: string;
  /** The value an optional-value option takes when given bare (virtio-forwarder's default). */
  bare?: string;
  repeat?: boolean;
}

/** virtio-forwarder's options (virtio_forwarder_main.c), with the variable each stands for. */
export const VFWD_OPTIONS: readonly VfwdOption[] = [
  { long: 'cpus', short: 'C', arity: 'required', variable: 'VIRTIOFWD_CPU_MASK' },
  { long: 'master-lcore', short: 'M', arity: 'required', variable: 'VIRTIOFWD_MASTER_LCORE' },
  { long: 'nodaemon', short: 'n', arity: 'optional' },
  { long: 'loglevel', short: 'l', arity: 'required', variable: 'VIRTIOFWD_LOG_LEVEL' },
  { long: 'pid-path', short: 'p', arity: 'required', variable: 'VIRTIOFWD_PID_DIR' },
  { long: 'huge-dir', short: 'H', arity: 'required', variable: 'VIRTIOFWD_HUGETLBFS_MOUNT_POINT' },
  { long: 'ovsdb-sock', short: 'O', arity: 'required', variable: 'VIRTIOFWD_OVSDB_SOCK_PATH' },
  { long: 'zmq-config-ep', short: 'Y', arity: 'optional', variable: 'VIRTIOFWD_ZMQ_CONFIG_EP', bare: 'ipc:///var/run/virtio-forwarder/config' },
  { long: 'zmq-port-control-ep', short: 'Z', arity: 'optional', variable: 'VIRTIOFWD_ZMQ_PORT_CONTROL_EP', bare: 'ipc:///var/run/virtio-forwarder/port_control' },
  { long: 'zmq-stats-ep', short: 'z', arity: 'optional', variable: 'VIRTIOFWD_ZMQ_STATS_EP', bare: 'ipc:///var/run/virtio-forwarder/stats' },
  { long: 'zmq-core-sched-ep', short: 's', arity: 'optional', variable: 'VIRTIOFWD_ZMQ_CORE_SCHED_EP', bare: 'ipc:///var/run/virtio-forwarder/core_sched' },
  { long: 'ipc', short: 'I', arity: 'none', variable: 'VIRTIOFWD_IPC_PORT_CONTROL' },
  { long: 'vhost-username', short: 'u', arity: 'optional', variable: 'VIRTIOFWD_SOCKET_OWNER', bare: '' },
  { long: 'vhost-groupname', short: 'g', arity: 'optional', variable: 'VIRTIOFWD_SOCKET_GROUP', bare: '' },
  { long: 'vhost-path', short: 'V', arity: 'required', variable: 'VIRTIOFWD_SOCKET_DIR' },
  { long: 'vhost-socket', short: 'S', arity: 'required', variable: 'VIRTIOFWD_SOCKET_FNAME_PATTERN' },
  { long: 'virtio-cpu', short: 'c', arity: 'required', variable: 'VIRTIOFWD_CPU_PINS', repeat: true },
  { long: 'enable-jumbo', short: 'J', arity: 'none', variable: 'VIRTIOFWD_JUMBO' },
  { long: 'enable-mrgbuf', short: 'R', arity: 'none', variable: 'VIRTIOFWD_MRGBUF' },
  { long: 'add-pci-vf', short: 'P', arity: 'required', variable: 'VIRTIOFWD_STATIC_VFS', repeat: true },
  { long: 'vfio-vf-token', short: 't', arity: 'required', variable: 'VIRTIOFWD_VFIO_VF_TOKEN' },
  { long: 'vhostuser-client', short: 'i', arity: 'none', variable: 'VIRTIOFWD_VHOST_CLIENT' },
  { long: 'zero-copy', short: '0', arity: 'none', variable: 'VIRTIOFWD_ZERO_COPY' },
  { long: 'enable-tso', short: 'T', arity: 'none', variable: 'VIRTIOFWD_TSO' },
  { long: 'dynamic-sockets', short: 'd', arity: 'none', variable: 'VIRTIOFWD_DYNAMIC_SOCKETS' },
  { long: 'same-numa', short: 'a', arity: 'none', variable: 'VIRTIOFWD_CPU_NIC_SAME_NUMA' },
  { long: 'version', short: 'v', arity: 'none' },
];

/** vio4wd's own additions, long form only (they have no virtio-forwarder meaning). */
const VIO4WD_OPTIONS = ['vf-stand-in', 'metrics-address', 'log-level'] as const;

export interface VfwdCommandLine {
  /** The settings the options stand for, as a settings file would hold them. */
  env: EnvParseResult;
  version: boolean;
  /** --vf-stand-in PCI=DEVARGS (vio4wd only). */
  standIns: Record<string, string>;
  metricsAddress?: string;
  logLevel?: string;
}

/** True when argv (after the program name) is virtio-forwarder's command line, not a vio4wd subcommand. */
export function isVirtioForwarderCommandLine(args: readonly string[]): boolean {
  const first = args[0];
  if (first === undefined || !first.startsWith('-')) return false;
  // vio4wd's own top-level options, given alone
  return !(args.length === 1 && ['-V', '--version', '-h', '--help'].includes(first));
}

const usage = (): string =>
  `virtio-forwarder's options: ${VFWD_OPTIONS.map((o) => `-${o.short}/--${o.long}${o.arity === 'required' ? ' <val>' : o.arity === 'optional' ? '[=<val>]' : ''}`).join(', ')}; vio4wd adds ${VIO4WD_OPTIONS.map((o) => `--${o}`).join(', ')}`;

/**
 * Reads virtio-forwarder's options. Every settings variable the command line can carry is set:
 * to the option's value, or empty when the option is absent (virtio-forwarder's default: the
 * service is off), as its start script leaves it out when the variable is empty.
 */
export function parseVirtioForwarderArgs(args: readonly string[]): VfwdCommandLine {
  const vars = new Map<string, string | string[]>();
  const lines = new Map<string, number>();
  const out: VfwdCommandLine = { env: { vars, lines }, version: false, standIns: {} };
  const bad = (msg: string): never => {
    throw new ValidationError('command line', `${msg} (${usage()})`);
  };
  const set = (o: VfwdOption, value: string | undefined) => {
    if (o.long === 'version') {
      out.version = true;
      return;
    }
    if (!o.variable) return; // --nodaemon: vio4wd always runs in the foreground, logging to stderr
    const v = o.arity === 'none' ? 'y' : (value ?? o.bare ?? '');
    if (o.repeat) {
      const prev = vars.get(o.variable);
      vars.set(o.variable, [...(Array.isArray(prev) ? prev : []), v]);
    } else vars.set(o.variable, v);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      if (i + 1 < args.length) bad(`unexpected argument "${args[i + 1]}"`);
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      let value: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
      if ((VIO4WD_OPTIONS as readonly string[]).includes(name)) {
        if (value === undefined) value = args[++i];
        if (value === undefined) bad(`--${name} needs a value`);
        if (name === 'vf-stand-in') {
          const eq = value!.indexOf('=');
          const pci = eq > 0 ? pciFields(value!.slice(0, eq)) : undefined;
          if (!pci || eq === value!.length - 1) bad(`--vf-stand-in "${value}" is not <PCI>=<devargs>, e.g. 0000:00:10.1=net_tap0,iface=vf0`);
          out.standIns[formatPciAddress(pci!)] = value!.slice(eq + 1);
        } else if (name === 'metrics-address') out.metricsAddress = value!;
        else out.logLevel = value!;
        continue;
      }
      const o = VFWD_OPTIONS.find((x) => x.long === name);
      if (!o) return bad(`unknown option --${name}`);
      if (o.arity === 'none' && value !== undefined) bad(`--${name} takes no value`);
      if (o.arity === 'required' && value === undefined) {
        value = args[++i];
        if (value === undefined) bad(`--${name} needs a value`);
      }
      set(o, value);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // a cluster of short options; one that takes a value ends it
      for (let j = 1; j < a.length; j++) {
        const o = VFWD_OPTIONS.find((x) => x.short === a[j]);
        if (!o) return bad(`unknown option -${a[j]}`);
        if (o.arity === 'none') {
          set(o, undefined);
          continue;
        }
        let value: string | undefined = a.slice(j + 1) || undefined;
        if (value === undefined && o.arity === 'required') {
          value = args[++i];
          if (value === undefined) bad(`-${o.short} needs a value`);
        }
        set(o, value);
        break;
      }
      continue;
    }
    bad(`unexpected argument "${a}"`);
  }
  if (out.version) return out;
  if (!vars.has('VIRTIOFWD_CPU_MASK')) bad('-C/--cpus is required: the worker CPUs, e.g. -C1,2 or -C0x6');
  // what the daemon does without an option: the settings it would not get stay empty
  for (const o of VFWD_OPTIONS) {
    if (!o.variable || vars.has(o.variable)) continue;
    if (o.variable === 'VIRTIOFWD_SOCKET_DIR') vars.set(o.variable, '/tmp'); // its built-in socket directory
    else if (o.variable === 'VIRTIOFWD_PID_DIR') vars.set(o.variable, '/var/run');
    else if (o.variable === 'VIRTIOFWD_HUGETLBFS_MOUNT_POINT' || o.variable === 'VIRTIOFWD_SOCKET_OWNER' || o.variable === 'VIRTIOFWD_SOCKET_GROUP') continue;
    else vars.set(o.variable, o.repeat ? [] : '');
  }
  // -s/--zmq-core-sched-ep is passed only when the core scheduler is enabled
  vars.set('VIO4WD_CORE_SCHED_ENABLE', vars.get('VIRTIOFWD_ZMQ_CORE_SCHED_EP') ? 'true' : '');
  return out;
}
