// Reads virtio-forwarder's /etc/default/virtioforwarder (shell variables, bash arrays allowed)
// and turns it into vio4wd's configuration: each variable is honoured where vio4wd has the
// feature, and named in a warning where it has not.
import type { AgentConfig, RelayConfigEntry } from './schema.js';
import { ValidationError } from '../../util/errors.js';
import { parseCpuList, parsePciAddress } from '../../util/identifiers.js';

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
  'VIRTIOFWD_SOCKET_FNAME_PATTERN', 'VIRTIOFWD_MASTER_LCORE', 'VIRTIOFWD_VHOST_CLIENT', 'VIRTIOFWD_ZERO_COPY',
  'VIRTIOFWD_BIND_VFIO_PCI', 'VIO4WD_CORE_SCHED_ENABLE', 'VIO4WD_CORE_SCHED_SENSITIVITY', 'VIO4WD_CORE_SCHED_LOG_LEVEL',
  'VIO4WD_CORE_SCHED_POLL_INTERVAL', 'VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT',
] as const;

const list = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : v.split(/[\s,]+/)).map((x) => x.trim()).filter(Boolean);
const scalar = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(' ') : v)?.trim();
const truthy = (v: string | undefined): boolean => v !== undefined && v !== '' && !/^(0|false|no|off|n)$/i.test(v);
const owner = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);

/** Maps a parsed settings file onto AgentConfig. */
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
  const bool = (k: string, set: (b: boolean) => void) => {
    const x = get(k);
    if (x !== undefined) set(truthy(x));
  };
  bool('VIRTIOFWD_JUMBO', (b) => (engine.jumbo = b));
  bool('VIRTIOFWD_MRGBUF', (b) => (engine.mergeableRxBuffers = b));
  bool('VIRTIOFWD_TSO', (b) => (engine.tso = b));
  const hugedir = get('VIRTIOFWD_HUGETLBFS_MOUNT_POINT');
  if (hugedir) engine.hugeDir = hugedir;
  const token = get('VIRTIOFWD_VFIO_VF_TOKEN');
  if (token) engine.extraEalArgs = [`--vfio-vf-token=${token}`];

  const so = get('VIRTIOFWD_SOCKET_OWNER');
  if (so) vhost.owner = owner(so);
  const sg = get('VIRTIOFWD_SOCKET_GROUP');
  if (sg) vhost.group = owner(sg);
  const sdir = get('VIRTIOFWD_SOCKET_DIR');
  if (sdir) vhost.socketDir = sdir;
  const pat = get('VIRTIOFWD_SOCKET_FNAME_PATTERN');
  if (pat) {
    if ((pat.match(/%u/g) ?? []).length !== 1 || /%[^u]/.test(pat.replace(/%u/, ''))) {
      throw new ValidationError('VIRTIOFWD_SOCKET_FNAME_PATTERN', `"${pat}" must contain exactly one %u (the relay id) and no other % sequence`);
    }
    vhost.socketNamePattern = pat;
  }
  if (v.has('VIRTIOFWD_VHOST_CLIENT')) vhost.mode = get('VIRTIOFWD_VHOST_CLIENT') ? 'client' : 'server';

  bool('VIRTIOFWD_IPC_PORT_CONTROL', (b) => (control.enabled = b));
  bool('VIRTIOFWD_DYNAMIC_SOCKETS', (b) => (control.dynamicSockets = b));
  const ep = (k: string, f: 'portControl' | 'stats' | 'coreSched' | 'config') => {
    const x = get(k);
    if (x) control[f] = x;
  };
  ep('VIRTIOFWD_ZMQ_PORT_CONTROL_EP', 'portControl');
  ep('VIRTIOFWD_ZMQ_STATS_EP', 'stats');
  ep('VIRTIOFWD_ZMQ_CORE_SCHED_EP', 'coreSched');
  ep('VIRTIOFWD_ZMQ_CONFIG_EP', 'config');

  const pid = get('VIRTIOFWD_PID_DIR');
  if (pid) config.pidFile = `${pid.replace(/\/$/, '')}/virtio-forwarder.pid`;

  const relays: RelayConfigEntry[] = [];
  for (const item of list(v.get('VIRTIOFWD_STATIC_VFS'))) {
    const m = /^([^=]+)=(\d+)$/.exec(item);
    if (!m) throw new ValidationError('VIRTIOFWD_STATIC_VFS', `"${item}" is not <PCI>=<relay id>: write e.g. 0000:05:08.1=1`);
    relays.push({ id: Number(m[2]), vf: { pciAddress: parsePciAddress(m[1]!, 'VIRTIOFWD_STATIC_VFS') } });
  }
  if (relays.length) config.relays = relays;

  const pins: Record<string, number[]> = {};
  for (const item of list(v.get('VIRTIOFWD_CPU_PINS')).flatMap((x) => x.split(/\s+/))) {
    const m = /^(\d+):(\d+)(?:,(\d+))?$/.exec(item);
    if (!m) throw new ValidationError('VIRTIOFWD_CPU_PINS', `"${item}" is not <relay>:<cpu>[,<cpu>]: write e.g. 1:2,3`);
    pins[m[1]!] = m[3] !== undefined ? [Number(m[2]), Number(m[3])] : [Number(m[2])];
  }
  if (Object.keys(pins).length) config.cpuPins = pins;

  const bind = list(v.get('VIRTIOFWD_BIND_VFIO_PCI'));
  if (bind.length) config.sriov = { bindVfio: bind };

  if (get('VIRTIOFWD_OVSDB_SOCK_PATH')) {
    warnings.push('VIRTIOFWD_OVSDB_SOCK_PATH: vio4wd has no OVSDB monitor; ignored. Add relays with ZeroMQ port control (vio4wd relay add) or the config file');
  }
  if (truthy(get('VIRTIOFWD_ZERO_COPY'))) {
    warnings.push('VIRTIOFWD_ZERO_COPY: DPDK 22.11 removed vhost dequeue zero-copy; ignored (vio4wd forwards without extra copies anyway)');
  }
  if (v.has('VIRTIOFWD_CPU_NIC_SAME_NUMA') && !truthy(get('VIRTIOFWD_CPU_NIC_SAME_NUMA'))) {
    warnings.push('VIRTIOFWD_CPU_NIC_SAME_NUMA: vio4wd always prefers NUMA-local workers when it picks one; pin CPUs with VIRTIOFWD_CPU_PINS to override');
  }
  for (const k of ['VIO4WD_CORE_SCHED_ENABLE', 'VIO4WD_CORE_SCHED_SENSITIVITY', 'VIO4WD_CORE_SCHED_LOG_LEVEL', 'VIO4WD_CORE_SCHED_POLL_INTERVAL', 'VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT']) {
    if (v.has(k) && (k !== 'VIO4WD_CORE_SCHED_ENABLE' || truthy(get(k)))) {
      warnings.push(`${k}: vio4wd has no load-based core scheduler daemon; ignored. Its core scheduling endpoint (UPDATE, GET_EAL_CORES) moves relays on request`);
    }
  }

  if (Object.keys(engine).length) config.engine = engine;
  if (Object.keys(vhost).length) config.vhostUser = vhost;
  if (Object.keys(control).length) config.control = control;
  return { config, warnings };
}
