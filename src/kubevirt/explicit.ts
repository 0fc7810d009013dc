// Interface settings given by hand (the VMI annotation vio4wd.io/interfaces, --interface flags,
// VIO4WD_INTERFACES), and the field checks every socket source shares.
import { ValidationError } from '../util/errors.js';
import type { Vmi } from './vmi.js';
import { parseMac } from '../util/identifiers.js';
import { MAX_QUEUES, MTU_MAX, MTU_MIN } from '../util/limits.js';

export type VhostMode = 'client' | 'server';

export const INTERFACES_ANNOTATION = 'vio4wd.io/interfaces';

/** Settings given by hand for one interface (flags, env, VMI annotation). */
export interface ExplicitInterface {
  path?: string;
  mode?: VhostMode;
  mac?: string;
  mtu?: number;
  queues?: number;
}

export function parseMode(field: string, v: string): VhostMode {
  if (v !== 'client' && v !== 'server') throw new ValidationError(field, `"${v}" is not a vhost-user mode; use client or server (QEMU's role)`);
  return v;
}

export function parseIntIn(field: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ValidationError(field, `"${String(v)}" must be an integer in ${min}..${max}`);
  return n;
}

export function checkPath(field: string, p: string): string {
  if (!p.startsWith('/')) throw new ValidationError(field, `"${p}" must be an absolute path (as the virt-launcher pod sees it)`);
  return p;
}

function explicitFromObject(field: string, o: Record<string, unknown>): ExplicitInterface {
  const out: ExplicitInterface = {};
  for (const [k, v] of Object.entries(o)) {
    const f = `${field}.${k}`;
    switch (k) {
      case 'path':
        if (typeof v !== 'string') throw new ValidationError(f, 'must be a string');
        out.path = checkPath(f, v);
        break;
      case 'mode':
        out.mode = parseMode(f, String(v));
        break;
      case 'mac':
        if (typeof v !== 'string') throw new ValidationError(f, 'must be a string');
        out.mac = parseMac(v, f);
        break;
      case 'mtu':
        out.mtu = parseIntIn(f, v, MTU_MIN, MTU_MAX);
        break;
      case 'queues':
        out.queues = parseIntIn(f, v, 1, MAX_QUEUES);
        break;
      default:
        throw new ValidationError(f, 'unknown key; known: path, mode, mac, mtu, queues');
    }
  }
  return out;
}

/**
 * Parses one --interface value: `NAME=PATH` or `NAME:key=value,...` with keys path, mode, mac,
 * mtu, queues (e.g. `net1:path=/var/run/vio4wd/r1/vhost.sock,mode=server,mtu=9000`).
 */
export function parseInterfaceSpec(spec: string, field = '--interface'): [string, ExplicitInterface] {
  const s = spec.trim();
  const short = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(\/.*)$/.exec(s);
  if (short) return [short[1]!, { path: short[3]! }];
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?):(.+)$/.exec(s);
  if (!m) throw new ValidationError(field, `"${spec}" is not NAME=PATH or NAME:key=value,...`);
  const o: Record<string, string> = {};
  for (const kv of m[3]!.split(',')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new ValidationError(field, `"${kv}" in "${spec}" is not key=value`);
    o[kv.slice(0, eq).trim()] = kv.slice(eq + 1).trim();
  }
  return [m[1]!, explicitFromObject(`${field}[${m[1]}]`, o)];
}

/** VIO4WD_INTERFACES: --interface values separated by ';' or newlines. */
export function parseInterfacesEnv(v: string | undefined): Map<string, ExplicitInterface> {
  const out = new Map<string, ExplicitInterface>();
  for (const part of (v ?? '').split(/[;\n]/)) {
    if (part.trim() === '') continue;
    const [name, e] = parseInterfaceSpec(part, 'VIO4WD_INTERFACES');
    out.set(name, e);
  }
  return out;
}

/** The VMI annotation vio4wd.io/interfaces: JSON {"net1": {"path": ..., "mac": ..., ...}}. */
export function explicitFromVmi(vmi: Vmi): Map<string, ExplicitInterface> {
  const out = new Map<string, ExplicitInterface>();
  const raw = vmi.metadata?.annotations?.[INTERFACES_ANNOTATION];
  if (raw === undefined) return out;
  const field = `annotation ${INTERFACES_ANNOTATION}`;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new ValidationError(field, `not valid JSON (${(err as Error).message}); write {"net1": {"path": "/var/run/vio4wd/...", "mac": "02:..."}}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(field, 'must be a JSON object keyed by interface name');
  for (const [name, o] of Object.entries(v)) {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ValidationError(`${field}.${name}`, 'must be an object');
    out.set(name, explicitFromObject(`${field}.${name}`, o as Record<string, unknown>));
  }
  return out;
}
