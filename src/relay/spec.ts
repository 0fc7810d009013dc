// A relay's spec as the manager keeps it: checked and filled (normalizeSpec), and turned into
// what the engine is given (engineConfig). Pure functions: no engine, no clock, no file system.
import { isAbsolute, join } from 'node:path';
import { ValidationError } from '../util/errors.js';
import { isMacAddress, isPciAddress } from '../util/identifiers.js';
import { MAX_BOND_MEMBERS, MAX_DEVARGS, MAX_QUEUES, MAX_SOCKET_PATH, MTU_MAX, MTU_MIN } from '../util/limits.js';
import type { RelayConfig } from '../engine/types.js';
import { DEFAULT_RELAY_DEFAULTS, type RelayDefaults, type ResolvedVf } from './contracts.js';
import type { RelaySpec, RelayVf } from './types.js';
import type { VfSelector } from '../util/vf-selector.js';

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Checks and fills a spec; every error names the field and the fix. */
export function normalizeSpec(input: RelaySpec, defaults: RelayDefaults = DEFAULT_RELAY_DEFAULTS): RelaySpec {
  const spec = structuredClone(input);
  if (!NAME_RE.test(spec.name ?? '')) {
    throw new ValidationError('name', `"${spec.name}" is not a valid relay name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`);
  }
  if (spec.id !== undefined && (!Number.isInteger(spec.id) || spec.id < 0)) {
    throw new ValidationError('id', `${spec.id} is not a relay id: use a whole number >= 0`);
  }
  const vf = spec.vf ?? {};
  const sources = [vf.pciAddresses?.length ? 1 : 0, vf.selector ? 1 : 0, vf.devargs ? 1 : 0, vf.none ? 1 : 0].reduce((a, b) => a + b, 0);
  if (sources !== 1) {
    throw new ValidationError('vf', 'give exactly one of vf.pciAddress(es), vf.selector or vf.devargs');
  }
  if ((vf.pciAddresses?.length ?? 0) > MAX_BOND_MEMBERS) {
    throw new ValidationError('vf.pciAddresses', `${vf.pciAddresses!.length} VFs: a bond has at most ${MAX_BOND_MEMBERS}`);
  }
  if (vf.devargs !== undefined && vf.devargs.length > MAX_DEVARGS) {
    throw new ValidationError('vf.devargs', `${vf.devargs.length} characters: the engine takes devargs of at most ${MAX_DEVARGS}`);
  }
  for (const [i, a] of (vf.pciAddresses ?? []).entries()) {
    if (!isPciAddress(a)) throw new ValidationError(`vf.pciAddresses[${i}]`, `"${a}" is not a PCI address: use the form 0000:03:00.1`);
  }
  if (vf.bondMode !== undefined && (!Number.isInteger(vf.bondMode) || vf.bondMode < 0 || vf.bondMode > 6)) {
    throw new ValidationError('vf.bondMode', `${vf.bondMode} is not a bond mode: use 0..6`);
  }
  spec.vhostUser = { ...spec.vhostUser, mode: spec.vhostUser?.mode ?? defaults.mode };
  const v = spec.vhostUser;
  if (v.mode !== 'client' && v.mode !== 'server') {
    throw new ValidationError('vhostUser.mode', `"${String(v.mode)}" is not a mode: use client or server`);
  }
  if (v.socketPath !== undefined && !isAbsolute(v.socketPath)) {
    throw new ValidationError('vhostUser.socketPath', `"${v.socketPath}" must be an absolute path`);
  }
  if (v.socketPath !== undefined && Buffer.byteLength(v.socketPath) > MAX_SOCKET_PATH) {
    throw new ValidationError('vhostUser.socketPath', `${v.socketPath} is ${Buffer.byteLength(v.socketPath)} bytes, more than a unix socket path takes (${MAX_SOCKET_PATH}): use a shorter name or socket directory`);
  }
  if (v.socketDir !== undefined && !isAbsolute(v.socketDir)) {
    throw new ValidationError('vhostUser.socketDir', `"${v.socketDir}" must be an absolute path`);
  }
  for (const k of ['owner', 'group'] as const) {
    const o = v[k];
    if (typeof o === 'string' && /^\d+$/.test(o)) v[k] = Number(o);
    else if (typeof o === 'string') throw new ValidationError(`vhostUser.${k}`, `"${o}" must be resolved to a number before the relay is applied (the agent does it through NSS)`);
  }
  if (v.perm !== undefined && !/^0?[0-7]{3}$/.test(v.perm)) {
    throw new ValidationError('vhostUser.perm', `"${v.perm}" is not a permission: use octal digits like 0660`);
  }
  if (spec.guestQueues !== undefined && (!Number.isInteger(spec.guestQueues) || spec.guestQueues < 1 || spec.guestQueues > MAX_QUEUES)) {
    throw new ValidationError('guestQueues', `${spec.guestQueues} is out of range: use 1..${MAX_QUEUES}`);
  }
  if (spec.queues !== undefined && (!Number.isInteger(spec.queues) || spec.queues < 1 || spec.queues > MAX_QUEUES)) {
    throw new ValidationError('queues', `${spec.queues} queue pairs is out of range: use 1..${MAX_QUEUES}`);
  }
  if (spec.mac !== undefined && !isMacAddress(spec.mac)) {
    throw new ValidationError('mac', `"${spec.mac}" is not a MAC address: use the form 52:54:00:12:34:56`);
  }
  if (spec.mtu !== undefined && (!Number.isInteger(spec.mtu) || spec.mtu < MTU_MIN || spec.mtu > MTU_MAX)) {
    throw new ValidationError('mtu', `${spec.mtu} is out of range: use ${MTU_MIN}..${MTU_MAX}`);
  }
  if (spec.resourceName !== undefined && !/^[a-z0-9.-]+\/[a-zA-Z0-9._-]+$/.test(spec.resourceName)) {
    throw new ValidationError('resourceName', `"${spec.resourceName}" is not a resource name: use vio4wd.io/<pool>`);
  }
  for (const [i, c] of (spec.cpus ?? []).entries()) {
    if (!Number.isInteger(c) || c < 0) throw new ValidationError(`cpus[${i}]`, `${c} is not a CPU number`);
  }
  if ((spec.cpus?.length ?? 0) > 2) throw new ValidationError('cpus', 'give one CPU (both directions) or two (VF->VM, VM->VF)');
  return spec;
}

/** The socket path of a relay: its own, or the defaults' directory and name pattern. */
export function socketPathFor(spec: RelaySpec, id: number, defaults: RelayDefaults): string {
  const v = spec.vhostUser;
  if (v.socketPath) return v.socketPath;
  const file = defaults.socketNamePattern.replace('%u', String(id));
  const dir = v.socketDir ?? defaults.socketDir;
  return defaults.relayDirs ? join(dir, spec.name, file) : join(dir, file);
}

/** Worker CPUs per direction from spec.cpus ([both] or [vfToVm, vmToVf]); undefined: engine's choice. */
export function wantedCpus(spec: RelaySpec): { vfToVm?: number; vmToVf?: number } | undefined {
  const cpus = spec.cpus;
  if (!cpus || cpus.length === 0) return undefined;
  return { vfToVm: cpus[0], vmToVf: cpus[1] ?? cpus[0] };
}

/** What changes of the spec need a re-attach (CPUs are applied live). */
export function configKey(spec: RelaySpec, socketPath: string): string {
  // a pool that changes (an admin edits the policy) is checked at the next attach and does
  // not interrupt a running relay
  return JSON.stringify([{ ...spec.vf, pool: undefined }, spec.vhostUser, socketPath, spec.queues, spec.guestQueues, spec.mtu, spec.mac, spec.numaNode]);
}

export function cpusKey(c: { vfToVm?: number; vmToVf?: number } | undefined): string {
  return c ? `${c.vfToVm ?? '-'}/${c.vmToVf ?? '-'}` : '';
}

/** The engine's RelayConfig for a relay with its resolved VF. */
/** `resolved` undefined: a relay without a VF yet (vf.none). */
export function engineConfig(spec: RelaySpec, id: number, socketPath: string, resolved: ResolvedVf | undefined, defaults: RelayDefaults): RelayConfig {
  const v = spec.vhostUser;
  const cfg: RelayConfig = {
    id,
    ...(resolved ? { vf: resolved.vf } : {}),
    socketPath,
    mode: v.mode,
    queues: spec.queues ?? defaults.queues,
  };
  if (spec.guestQueues !== undefined) cfg.vhostQueues = Math.max(spec.guestQueues, cfg.queues);
  const owner = typeof v.owner === 'number' ? v.owner : defaults.owner;
  const group = typeof v.group === 'number' ? v.group : defaults.group;
  const perm = v.perm !== undefined ? parseInt(v.perm, 8) : defaults.perm;
  if (owner !== undefined) cfg.socketOwner = owner;
  if (group !== undefined) cfg.socketGroup = group;
  if (perm !== undefined) cfg.socketPerm = perm;
  const mtu = spec.mtu ?? defaults.mtu;
  if (mtu !== undefined) cfg.mtu = mtu;
  if (defaults.mergeableRxBuffers !== undefined) cfg.mergeableRxBuffers = defaults.mergeableRxBuffers;
  if (defaults.tso !== undefined) cfg.tso = defaults.tso;
  const numa = spec.numaNode ?? resolved?.numaNode;
  if (numa !== undefined) cfg.numaNode = numa;
  const cpus = wantedCpus(spec);
  if (cpus) cfg.cpus = cpus;
  return cfg;
}

/** A VF as a config file or a VirtioRelay names it: one address, several (a bond), a selector
 *  or devargs. */
export interface VfRequest {
  pciAddress?: string;
  pciAddresses?: string[];
  selector?: VfSelector;
  devargs?: string;
  bondMode?: number;
  bondName?: string;
}

/** The relay's VF from a request: addresses lower-cased (one becomes a list of one), only the
 *  fields given, nothing shared with the request. */
export function relayVfOf(vf: VfRequest): RelayVf {
  return {
    ...(vf.pciAddress ? { pciAddresses: [vf.pciAddress.toLowerCase()] } : {}),
    ...(vf.pciAddresses ? { pciAddresses: vf.pciAddresses.map((a) => a.toLowerCase()) } : {}),
    ...(vf.selector ? { selector: { ...vf.selector } } : {}),
    ...(vf.devargs ? { devargs: vf.devargs } : {}),
    ...(vf.bondMode !== undefined ? { bondMode: vf.bondMode } : {}),
    ...(vf.bondName ? { bondName: vf.bondName } : {}),
  };
}
