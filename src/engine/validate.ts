// Argument checks of the engine facade, before anything reaches DPDK: each error names the
// field and what to do. The native engine checks again (it is the authority on ids in use).
import { statSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import { ValidationError } from '../util/errors.js';
import { isPciAddress } from '../util/identifiers.js';
import { MAX_BOND_MEMBERS, MAX_DEVARGS, MAX_QUEUES, MAX_RELAYS, MAX_SOCKET_PATH, MTU_MAX, MTU_MIN, RELAY_ID_MAX } from '../util/limits.js';
import { EngineError } from './errors.js';
import type { EngineOptions, RelayConfig, VfSource } from './types.js';


const isInt = (v: unknown): v is number => Number.isInteger(v);

function intIn(field: string, v: unknown, lo: number, hi: number): void {
  if (!isInt(v) || v < lo || v > hi) throw new ValidationError(field, `${JSON.stringify(v)} is not an integer in ${lo}..${hi}`);
}

function optBool(field: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'boolean') throw new ValidationError(field, `${JSON.stringify(v)} is not a boolean`);
}

/** Checks the relay-independent engine options (CPUs and EAL flags are checked by buildEalArgs). */
export function validateEngineOptions(opts: EngineOptions): void {
  if (typeof opts !== 'object' || opts === null) throw new ValidationError('options', 'must be an object');
  optBool('mergeableRxBuffers', opts.mergeableRxBuffers);
  optBool('tso', opts.tso);
  optBool('jumbo', opts.jumbo);
  optBool('inMemory', opts.inMemory);
  optBool('noPci', opts.noPci);
  for (const f of ['rxDescriptors', 'txDescriptors'] as const) {
    const v = opts[f];
    if (v === undefined) continue;
    intIn(f, v, 64, 4096);
    if (v % 32 !== 0) throw new ValidationError(f, `${v} is not a multiple of 32 (VF drivers need that)`);
  }
  if (opts.poolQueuePairs !== undefined) intIn('poolQueuePairs', opts.poolQueuePairs, 1, MAX_RELAYS * MAX_QUEUES);
  if (opts.idleSweepMicros !== undefined) intIn('idleSweepMicros', opts.idleSweepMicros, 0, 10_000);
}

/** Checks where a VF comes from (RelayConfig.vf, Engine.attachVf). */
export function validateVfSource(vf: VfSource): void {
  if (typeof vf !== 'object' || vf === null) throw new ValidationError('vf', 'give vf.pciAddresses or vf.devargs');
  const hasPci = vf.pciAddresses !== undefined;
  const hasDev = vf.devargs !== undefined;
  if (hasPci === hasDev) throw new ValidationError('vf', 'give exactly one of vf.pciAddresses and vf.devargs');
  if (hasPci) {
    const list = vf.pciAddresses;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BOND_MEMBERS)
      throw new ValidationError('vf.pciAddresses', `give 1 VF, or 2..${MAX_BOND_MEMBERS} VFs for a bond`);
    for (const a of list)
      if (typeof a !== 'string' || !isPciAddress(a))
        throw new ValidationError('vf.pciAddresses', `"${String(a)}" is not a PCI address like 0000:03:00.1`);
    if (new Set(list.map((a) => a.toLowerCase())).size !== list.length)
      throw new ValidationError('vf.pciAddresses', 'the same VF is listed twice');
    if (list.length > 1 && vf.bondMode !== undefined) intIn('vf.bondMode', vf.bondMode, 0, 6);
    if (vf.bondName !== undefined && (typeof vf.bondName !== 'string' || !/^net_bonding[A-Za-z0-9_]{0,40}$/.test(vf.bondName)))
      throw new ValidationError('vf.bondName', `"${String(vf.bondName)}": a bond name starts with net_bonding (e.g. net_bonding_vio3)`);
  } else if (typeof vf.devargs !== 'string' || vf.devargs.trim() === '' || vf.devargs.length > MAX_DEVARGS) {
    throw new ValidationError('vf.devargs', 'give a DPDK devargs string such as "net_tap0,iface=vf0"');
  }
}

/** Checks a relay's configuration; `workerCpus` are the engine's worker CPUs. */
export function validateRelayConfig(cfg: RelayConfig, workerCpus: number[]): void {
  if (typeof cfg !== 'object' || cfg === null) throw new ValidationError('relay', 'must be an object');
  intIn('id', cfg.id, 0, RELAY_ID_MAX);
  if (cfg.vf !== undefined) validateVfSource(cfg.vf);
  if (cfg.mode !== 'server' && cfg.mode !== 'client') throw new ValidationError('mode', `${JSON.stringify(cfg.mode)}: use "server" or "client"`);
  const p = cfg.socketPath;
  if (typeof p !== 'string' || !isAbsolute(p)) throw new ValidationError('socketPath', `${JSON.stringify(p)} is not an absolute path`);
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH)
    throw new ValidationError('socketPath', `${p} is ${Buffer.byteLength(p)} bytes; a unix socket path has at most ${MAX_SOCKET_PATH}`);
  const dir = dirname(p);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new EngineError('ENOENT', `directory ${dir} does not exist; create it first`, { field: 'socketPath' });
  if (cfg.socketOwner !== undefined) intIn('socketOwner', cfg.socketOwner, 0, 2 ** 32 - 2);
  if (cfg.socketGroup !== undefined) intIn('socketGroup', cfg.socketGroup, 0, 2 ** 32 - 2);
  if (cfg.socketPerm !== undefined) intIn('socketPerm', cfg.socketPerm, 0, 0o7777);
  intIn('queues', cfg.queues, 1, MAX_QUEUES);
  if (cfg.vhostQueues !== undefined) intIn('vhostQueues', cfg.vhostQueues, cfg.queues, MAX_QUEUES);
  if (cfg.mtu !== undefined) intIn('mtu', cfg.mtu, MTU_MIN, MTU_MAX);
  optBool('mergeableRxBuffers', cfg.mergeableRxBuffers);
  optBool('tso', cfg.tso);
  if (cfg.numaNode !== undefined) intIn('numaNode', cfg.numaNode, 0, 7);
  if (cfg.cpus !== undefined) {
    if (typeof cfg.cpus !== 'object' || cfg.cpus === null) throw new ValidationError('cpus', 'must be {vfToVm?, vmToVf?}');
    for (const d of ['vfToVm', 'vmToVf'] as const) {
      const c = cfg.cpus[d];
      if (c === undefined) continue;
      if (!isInt(c) || !workerCpus.includes(c))
        throw new ValidationError(`cpus.${d}`, `CPU ${String(c)} runs no worker (worker CPUs: ${workerCpus.join(',')}): pin to one of those, or leave cpus out and the engine picks one`);
    }
  }
}
