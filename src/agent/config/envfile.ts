// Reads virtio-forwarder's /etc/default/virtioforwarder (shell variables, bash arrays allowed)
// and turns it into vio4wd's configuration: each variable is honoured where vio4wd has the
// feature, and named in a warning where it has not.
import type { AgentConfig, RelayConfigEntry } from './schema.js';
import { ValidationError } from '../../util/errors.js';
import { formatPciAddress, parseCpuList, parsePciAddress, pciFields } from '../../util/identifiers.js';
import { MAX_QUEUES } from '../../util/limits.js';
import { DEFAULT_OVSDB_SOCKET } from '../ovsdb.js';
import { coreSchedSettings } from './envfile-sched.js';

export interface EnvParseResult {
  vars: Map<string, string | string[]>;
  /** Line number of each variable's last assignment. */
  lines: Map<string, number>;
}

/** True when the text looks like a shell variable file rather than YAML. */
export function looksLikeEnvFile(text: string): boolean {
  return /^\s*(export\s+)?(VIRTIOFWD|VIO4WD)_[A-Z0-9_]*=/m.test(text);
}

/**
 * Parses shell assignments: NAME=value, NAME="value", NAME='value', NAME=(a "b c" 'd'),
 * arrays over several lines, `export`, comments and $NAME / ${NAME} of earlier variables.
 */
export function parseEnvFile(text: string): EnvParseResult {
  const vars = new Map<string, string | string[]>();
  const lines = new Map<string, number>();
  let i = 0;
  let line = 1;
  const n = text.length;
  const err = (msg: string): never => {
    throw new ValidationError(`line ${line}`, msg);
  };
  const skipBlank = (): void => {
    while (i < n) {
      const c = text[i]!;
      if (c === '\n') {
        line++;
        i++;
      } else if (c === ' ' || c === '\t' || c === '\r' || c === ';') i++;
      else if (c === '#') while (i < n && text[i] !== '\n') i++;
      else break;
    }
  };
  const expand = (s: string): string =>
    s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => {
      const v = vars.get((a ?? b)!);
      return Array.isArray(v) ? v.join(' ') : v ?? '';
    });
  // one shell word (quotes joined), stopping at blanks, ')' or end of line
  const word = (inArray: boolean): string | undefined => {
    let out = '';
    let any = false;
    while (i < n) {
      const c = text[i]!;
      if (c === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) err('unterminated single quote: close the quote');
        const chunk = text.slice(i + 1, end);
        line += chunk.split('\n').length - 1;
        out += chunk;
        i = end + 1;
        any = true;
      } else if (c === '"') {
        let j = i + 1;
        let chunk = '';
        while (j < n && text[j] !== '"') {
          if (text[j] === '\\' && j + 1 < n) {
            chunk += text[j + 1];
            j += 2;
          } else chunk += text[j++];
        }
        if (j >= n) err('unterminated double quote: close the quote');
        line += chunk.split('\n').length - 1;
        out += expand(chunk);
        i = j + 1;
        any = true;
      } else if (c === '\\' && i + 1 < n) {
        if (text[i + 1] === '\n') line++;
        else out += text[i + 1];
        i += 2;
        any = true;
      } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ';' || (inArray && c === ')')) {
        break;
      } else if (c === '#' && !any) {
        break;
      } else {
        const m = /^[^\s'"\\;)#]+/.exec(text.slice(i, i + 4096));
        const chunk = m ? m[0] : c;
        out += expand(chunk);
        i += chunk.length;
        any = true;
      }
    }
    return any ? out : undefined;
  };
  while (true) {
    skipBlank();
    if (i >= n) break;
    const m = /^(export\s+)?([A-Za-z_][A-Za-z0-9_]*)(\+?)=/.exec(text.slice(i, i + 256));
    if (!m) err(`expected NAME=value, found "${text.slice(i, text.indexOf('\n', i) < 0 ? n : text.indexOf('\n', i)).trim()}": fix or comment out this line`);
    const name = m![2]!;
    const append = m![3] === '+';
    const startLine = line;
    i += m![0].length;
    if (text[i] === '(') {
      i++;
      const items: string[] = [];
      while (true) {
        skipBlank();
        if (i >= n) err(`array ${name} is not closed: add ')'`);
        if (text[i] === ')') {
          i++;
          break;
        }
        const w = word(true);
        if (w === undefined) err(`unexpected "${text[i]}" in array ${name}`);
        items.push(w!);
      }
      const prev = vars.get(name);
      vars.set(name, append && prev !== undefined ? [...(Array.isArray(prev) ? prev : [prev]), ...items] : items);
    } else {
      const w = word(false) ?? '';
      const prev = vars.get(name);
      vars.set(name, append && typeof prev === 'string' ? prev + w : w);
    }
    lines.set(name, startLine);
    // rest of the line must be blank or a comment
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
    if (i < n && text[i] !== '\n' && text[i] !== '#' && text[i] !== ';') {
      err(`unexpected text after ${name}=...: quote values that contain spaces`);
    }
  }
  return { vars, lines };
}

export interface EnvConversion {
  config: AgentConfig;
  /** One line per variable vio4wd does not honour, naming it and why. */
  warnings: string[];
}

/** Every variable of virtio-forwarder's settings file, with how vio4wd treats it. */
export const KNOWN_VARIABLES = [
  'VIRTIOFWD_CPU_MASK', 'VIRTIOFWD_LOG_LEVEL', 'VIRTIOFWD_IPC_PORT_CONTROL', 'VIRTIOFWD_OVSDB_SOCK_PATH',
  'VIRTIOFWD_JUMBO', 'VIRTIOFWD_MRGBUF', 'VIRTIOFWD_TSO', 'VIRTIOFWD_SOCKET_OWNER', 'VIRTIOFWD_SOCKET_GROUP',
  'VIRTIOFWD_HUGETLBFS_MOUNT_POINT', 'VIRTIOFWD_STATIC_VFS', 'VIRTIOFWD_DYNAMIC_SOCKETS', 'VIRTIOFWD_CPU_NIC_SAME_NUMA',
  'VIRTIOFWD_VFIO_VF_TOKEN', 'VIRTIOFWD_CPU_PINS', 'VIRTIOFWD_PID_DIR', 'VIRTIOFWD_ZMQ_CONFIG_EP',
  'VIRTIOFWD_ZMQ_PORT_CONTROL_EP', 'VIRTIOFWD_ZMQ_STATS_EP', 'VIRTIOFWD_ZMQ_CORE_SCHED_EP', 'VIRTIOFWD_SOCKET_DIR',
  'VIRTIOFWD_SOCKET_FNAME_PATTERN', 'VIRTIOFWD_BINARY', 'VIRTIOFWD_MASTER_LCORE', 'VIRTIOFWD_VHOST_CLIENT',
  'VIRTIOFWD_ZERO_COPY', 'VIRTIOFWD_BIND_VFIO_PCI', 'VIO4WD_CORE_SCHED_ENABLE', 'VIO4WD_CORE_SCHED_SENSITIVITY',
  'VIO4WD_CORE_SCHED_LOG_LEVEL', 'VIO4WD_CORE_SCHED_POLL_INTERVAL', 'VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT',
  'VIO4WD_ZMQ_ALLOW_REMOTE',
] as const;

/** Queue pairs offered to the guest by relays made the virtio-forwarder way (its own limit). */
export const DROP_IN_GUEST_QUEUES = MAX_QUEUES;
/** Sockets virtio-forwarder makes at start without VIRTIOFWD_DYNAMIC_SOCKETS: one per relay id
 *  0..63 (its MAX_RELAYS, the 64 ethdev ports of its packaged DPDK). */
export const VIRTIOFWD_DEFAULT_SOCKETS = 64;
/** virtio-forwarder's built-in VFIO VF token, used when VIRTIOFWD_VFIO_VF_TOKEN=0. */
export const DEFAULT_VFIO_VF_TOKEN = '14d63f20-8445-11ea-8900-1f9ce7d5650d';
/** virtio-forwarder's default stats endpoint: served whenever its core scheduling endpoint is. */
export const VIRTIOFWD_STATS_EP = 'ipc:///var/run/virtio-forwarder/stats';

/** virtio-forwarder takes PCI addresses with or without the domain (0000: assumed). */
const normPci = (s: string, field: string): string => parsePciAddress(s.trim(), field);

/**
 * One VIRTIOFWD_BIND_VFIO_PCI item: a PCI address (the domain may be left out), a netdev (all
 * its VFs) or netdev:count (its first count VFs).
 */
function bindItem(s: string): string {
  const t = s.trim();
  const pci = pciFields(t);
  if (pci) return formatPciAddress(pci);
  if (/^[A-Za-z0-9_.@-]{1,15}(:\d+)?$/.test(t)) return t;
  throw new ValidationError(
    'VIRTIOFWD_BIND_VFIO_PCI',
    `"${s}" is neither a PCI address (0000:01:02.3 or 01:02.3), a netdev name (ens3) nor netdev:count (ens4:16)`,
  );
}

/** A bash array's items, or a scalar's whitespace-separated words. */
const items = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((x) => x.split(/\s+/)).map((x) => x.trim()).filter(Boolean);
const scalar = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(' ') : v)?.trim();
const owner = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);

/**
 * VIRTIOFWD_CPU_PINS: each item is one or more `<relay>:<cpu>[,<cpu>]` separated by ';' (as
 * virtio-forwarder's --virtio-cpu takes them). One CPU serves both directions; two are
 * [VF->VM, VM->VF].
 */
export function parseCpuPins(v: string | string[] | undefined): Record<string, number[]> {
  const pins: Record<string, number[]> = {};
  for (const item of items(v).flatMap((x) => x.split(';')).filter(Boolean)) {
    const m = /^(\d+):(\d+)(?:,(\d+))?$/.exec(item);
    if (!m) throw new ValidationError('VIRTIOFWD_CPU_PINS', `"${item}" is not <relay>:<cpu>[,<cpu>]: write e.g. 0:1,1 or (0:1,1 1:2)`);
    pins[m[1]!] = m[3] !== undefined ? [Number(m[2]), Number(m[3])] : [Number(m[2])];
  }
  return pins;
}

/** VIRTIOFWD_STATIC_VFS: one `<PCI>=<relay id>` or a bash array of them. */
export function parseStaticVfs(v: string | string[] | undefined): RelayConfigEntry[] {
  return items(v).map((item) => {
    const m = /^([^=]+)=(\d+)$/.exec(item);
    if (!m) throw new ValidationError('VIRTIOFWD_STATIC_VFS', `"${item}" is not <PCI>=<relay id>: write e.g. 0000:05:08.1=1`);
    // as virtio-forwarder: the relay follows the guest's queue count (up to 32 queue pairs)
    return { id: Number(m[2]), vf: { pciAddress: normPci(m[1]!, 'VIRTIOFWD_STATIC_VFS') }, guestQueues: DROP_IN_GUEST_QUEUES };
  });
}

/**
 * VIRTIOFWD_VFIO_VF_TOKEN: empty passes no token, 0 virtio-forwarder's default token, anything
 * else must be a UUID.
 */
export function vfioTokenArgs(token: string | undefined): string[] {
  if (!token) return [];
  if (token === '0') return [`--vfio-vf-token=${DEFAULT_VFIO_VF_TOKEN}`];
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(token)) {
    throw new ValidationError(
      'VIRTIOFWD_VFIO_VF_TOKEN',
      `"${token}" is not a UUID: leave it empty (no token), write 0 (the default token ${DEFAULT_VFIO_VF_TOKEN}) or a UUID`,
    );
  }
  return [`--vfio-vf-token=${token.toLowerCase()}`];
}

/**
 * Maps a parsed settings file onto AgentConfig with the meaning virtio-forwarder's start script
 * gives each variable. A variable left out of the file keeps vio4wd's default; a variable set
 * to the empty string means what the start script makes of it (the option is not passed).
 */
export function envToConfig(parsed: EnvParseResult): EnvConversion {
  const v = parsed.vars;
  const warnings: string[] = [];
  const config: AgentConfig & Record<string, unknown> = {};
  const engine: NonNullable<AgentConfig['engine']> & Record<string, unknown> = {};
  const vhost: NonNullable<AgentConfig['vhostUser']> & Record<string, unknown> = {};
  const control: NonNullable<AgentConfig['control']> & Record<string, unknown> = {};
  const get = (k: string) => scalar(v.get(k));

  for (const name of v.keys()) {
    if (/^(VIRTIOFWD|VIO4WD)_/.test(name) && !(KNOWN_VARIABLES as readonly string[]).includes(name)) {
      warnings.push(`${name}: not a virtio-forwarder setting; ignored (check the spelling)`);
    }
  }
  /** The start script's ${X:+--flag}: any non-empty value switches the option on. */
  const flag = (k: string): boolean | undefined => {
    if (!v.has(k)) return undefined;
    const x = get(k) ?? '';
    if (/^(0|n|no|false|off|disabled?)$/i.test(x)) {
      warnings.push(`${k}=${x}: virtio-forwarder switches this on for any non-empty value, so it is on; leave it empty to switch it off`);
    }
    return x !== '';
  };

  const mask = get('VIRTIOFWD_CPU_MASK');
  if (mask) engine.workerCpus = parseCpuList(mask, 'VIRTIOFWD_CPU_MASK');
  const main = get('VIRTIOFWD_MASTER_LCORE');
  if (main) {
    if (!/^\d+$/.test(main)) throw new ValidationError('VIRTIOFWD_MASTER_LCORE', `"${main}" is not a CPU number`);
    engine.mainCpu = Number(main);
  }
  const level = get('VIRTIOFWD_LOG_LEVEL');
  if (level) {
    if (!/^[0-7]$/.test(level)) throw new ValidationError('VIRTIOFWD_LOG_LEVEL', `"${level}" is not a syslog level: use 0..7`);
    const l = Number(level);
    config.log = { level: l <= 3 ? 'error' : l === 4 ? 'warn' : l <= 6 ? 'info' : 'debug' };
    engine.logLevel = l + 1;
  }
  const jumbo = flag('VIRTIOFWD_JUMBO');
  if (jumbo !== undefined) engine.jumbo = jumbo;
  const mrg = flag('VIRTIOFWD_MRGBUF');
  if (mrg !== undefined) engine.mergeableRxBuffers = mrg;
  const tso = flag('VIRTIOFWD_TSO');
  if (tso !== undefined) engine.tso = tso;
  const hugedir = get('VIRTIOFWD_HUGETLBFS_MOUNT_POINT');
  if (hugedir) engine.hugeDir = hugedir;
  const token = vfioTokenArgs(get('VIRTIOFWD_VFIO_VF_TOKEN'));
  if (token.length) engine.extraEalArgs = token;

  const so = get('VIRTIOFWD_SOCKET_OWNER');
  if (so) vhost.owner = owner(so);
  const sg = get('VIRTIOFWD_SOCKET_GROUP');
  if (sg) vhost.group = owner(sg);
  const sdir = get('VIRTIOFWD_SOCKET_DIR');
  if (sdir) vhost.socketDir = sdir;
  const pat = get('VIRTIOFWD_SOCKET_FNAME_PATTERN');
  if (pat) {
    if ((pat.match(/%u/g) ?? []).length !== 1 || /%[^u]/.test(pat.replace(/%u/, '')) || pat.includes('/')) {
      throw new ValidationError('VIRTIOFWD_SOCKET_FNAME_PATTERN', `"${pat}" must contain exactly one %u (the relay id), no other % sequence and no /`);
    }
    if (/%u[0-9]/.test(pat)) throw new ValidationError('VIRTIOFWD_SOCKET_FNAME_PATTERN', `"${pat}": a digit after %u makes relay ids ambiguous; put a non-digit after it`);
    vhost.socketNamePattern = pat;
  }
  const client = flag('VIRTIOFWD_VHOST_CLIENT');
  if (client !== undefined) vhost.mode = client ? 'client' : 'server';

  // Endpoints, as the start script passes them: an endpoint variable set empty is not passed,
  // so that service is not started. Port control is ZeroMQ when its endpoint is set; without
  // one, virtio-forwarder falls back to its file IPC (VIRTIOFWD_IPC_PORT_CONTROL non-empty) or
  // to the OVSDB monitor.
  const ep = (k: string, f: 'portControl' | 'stats' | 'coreSched' | 'config') => {
    if (v.has(k)) control[f] = get(k) ?? '';
  };
  ep('VIRTIOFWD_ZMQ_PORT_CONTROL_EP', 'portControl');
  ep('VIRTIOFWD_ZMQ_STATS_EP', 'stats');
  ep('VIRTIOFWD_ZMQ_CORE_SCHED_EP', 'coreSched');
  ep('VIRTIOFWD_ZMQ_CONFIG_EP', 'config');
  // vio4wd's own: a tcp:// endpoint beyond loopback is refused without it (control.allowRemote)
  if (flag('VIO4WD_ZMQ_ALLOW_REMOTE')) control.allowRemote = true;
  const ipcPortControl = flag('VIRTIOFWD_IPC_PORT_CONTROL');
  const zmqPortControl = control.portControl !== '' && !(control.portControl === undefined && ipcPortControl === false);
  if (!zmqPortControl) {
    control.portControl = '';
    if (ipcPortControl) {
      warnings.push('VIRTIOFWD_IPC_PORT_CONTROL: with VIRTIOFWD_ZMQ_PORT_CONTROL_EP empty, virtio-forwarder uses its old file-based IPC, which vio4wd does not have; no port control. Set VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///var/run/virtio-forwarder/port_control');
    } else {
      // virtio-forwarder's port control is then its OVSDB monitor
      control.ovsdb = get('VIRTIOFWD_OVSDB_SOCK_PATH') || DEFAULT_OVSDB_SOCKET;
    }
  } else if (get('VIRTIOFWD_OVSDB_SOCK_PATH')) {
    warnings.push('VIRTIOFWD_OVSDB_SOCK_PATH: ignored, as by virtio-forwarder: port control is ZeroMQ (VIRTIOFWD_ZMQ_PORT_CONTROL_EP)');
  }
  // the core scheduling endpoint is passed only with VIO4WD_CORE_SCHED_ENABLE=true, and it
  // brings the stats endpoint with it (the scheduler reads the load there)
  const schedEnable = get('VIO4WD_CORE_SCHED_ENABLE');
  if (v.has('VIO4WD_CORE_SCHED_ENABLE') && schedEnable !== 'true') control.coreSched = '';
  if (control.coreSched !== '' && control.stats === '') control.stats = VIRTIOFWD_STATS_EP;
  // VIRTIOFWD_DYNAMIC_SOCKETS empty: virtio-forwarder makes the sockets of its 64 relay ids at
  // start (a guest may connect before its VF is added), and ADD_SOCK finds no free relay;
  // non-empty: no socket at start, ADD_SOCK/REMOVE_SOCK pair sockets with VFs
  const dynamic = flag('VIRTIOFWD_DYNAMIC_SOCKETS');
  if (dynamic !== undefined) {
    control.dynamicSockets = dynamic;
    vhost.precreateSockets = dynamic ? 0 : VIRTIOFWD_DEFAULT_SOCKETS;
  }

  const pid = get('VIRTIOFWD_PID_DIR');
  if (pid) config.pidFile = `${pid.replace(/\/$/, '')}/virtio-forwarder.pid`;

  const relays = parseStaticVfs(v.get('VIRTIOFWD_STATIC_VFS'));
  if (relays.length) config.relays = relays;

  const pins = parseCpuPins(v.get('VIRTIOFWD_CPU_PINS'));
  if (Object.keys(pins).length) {
    // virtio-forwarder refuses to start when a pin names a CPU without a worker
    const workers = engine.workerCpus ?? [1];
    for (const [id, cpus] of Object.entries(pins)) {
      const bad = cpus.find((c) => !workers.includes(c));
      if (bad !== undefined) {
        throw new ValidationError('VIRTIOFWD_CPU_PINS', `relay ${id}: CPU ${bad} runs no worker (VIRTIOFWD_CPU_MASK gives ${workers.join(',')}): pin it to one of those, or add ${bad} to the mask`);
      }
    }
    config.cpuPins = pins;
  }

  const bind = items(v.get('VIRTIOFWD_BIND_VFIO_PCI')).flatMap((x) => x.split(',')).filter(Boolean).map(bindItem);
  if (bind.length) config.sriov = { bindVfio: bind };

  if (flag('VIRTIOFWD_ZERO_COPY')) {
    warnings.push('VIRTIOFWD_ZERO_COPY: DPDK 22.11 removed vhost dequeue zero-copy; ignored (vio4wd forwards without extra copies anyway)');
  }
  // VIRTIOFWD_CPU_NIC_SAME_NUMA: vio4wd makes an mbuf pool only on the NUMA nodes that have
  // relays, as virtio-forwarder does with it set; it takes no more memory without it
  flag('VIRTIOFWD_CPU_NIC_SAME_NUMA');
  const sched = coreSchedSettings(get, flag, warnings);
  if (sched) config.coreScheduler = sched;
  // VIRTIOFWD_BINARY is the start script's path to the daemon: the daemon is vio4wd here

  if (Object.keys(engine).length) config.engine = engine;
  if (Object.keys(vhost).length) config.vhostUser = vhost;
  if (Object.keys(control).length) config.control = control;
  return { config, warnings };
}
