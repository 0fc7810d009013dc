// Port control endpoint: the request checks virtio-forwarder makes before acting, then one
// backend call. Checks and conditional semantics live here so every backend behaves alike.
import type {
  PortControlRequest,
  PortControlResponse,
} from './wire.gen.js';
import { PortControlRequest_Op as Op, PortControlResponse_Status as Status } from './wire.gen.js';
import type { AddSocketRequest, AddVfRequest, PortChange, RemoveSocketRequest, RemoveVfRequest } from './types.js';
import { endpoint, sourceText, type EndpointHandler, type HandlerContext, type RejectReason } from './handler.js';
import { checkPci, formatPci } from './pci.js';
import { ControlError, EBADMSG, EIO, EMSGSIZE, errnoOf, ETIMEDOUT } from './errno.js';
import { has } from './proto.js';
import { errorMessage } from '../util/errors.js';
import { MAX_SOCKET_PATH } from '../util/limits.js';

export type PortOp =
  | { kind: 'addVf'; req: AddVfRequest }
  | { kind: 'removeVf'; req: RemoveVfRequest }
  | { kind: 'addSocket'; req: AddSocketRequest }
  | { kind: 'removeSocket'; req: RemoveSocketRequest }
  | { kind: 'queryPci'; vhostPath: string };

export interface ValidatedPortRequest {
  op: PortOp;
  conditional: boolean;
  /** Fields that were ignored, for the log (virtio-forwarder warns and goes on). */
  warnings: string[];
}

const OP_NAMES = Object.keys(Op).map((k) => `${k}(${Op[k as keyof typeof Op]})`).join(', ');
/** DPDK device names (RTE_ETH_NAME_MAX_LEN) hold 63 bytes and a NUL. */
const MAX_BOND_NAME = 63;

const invalid = (field: string, message: string): ControlError => new ControlError('EINVAL', `request.${field}`, message);

/**
 * virtio-forwarder's request checks. Throws ControlError naming the field and the fix.
 * ADD and REMOVE need virtio_id; REMOVE and REMOVE_SOCK with several PCI addresses need a bond
 * name; QUERY_PCI needs vhost_path; virtio_id is ignored (with a warning) for the socket ops.
 */
export function validatePortControl(
  msg: PortControlRequest,
  limits: { maxRelays: number; maxBondMembers: number },
): ValidatedPortRequest {
  const warnings: string[] = [];
  const op = msg.op as number;
  const opName = (Object.keys(Op) as (keyof typeof Op)[]).find((k) => Op[k] === op);
  if (!opName) throw invalid('op', `unknown operation ${op}; use one of ${OP_NAMES}`);

  const wire = msg.pci_addrs ?? [];
  if (wire.length > limits.maxBondMembers) {
    throw new ControlError('E2BIG', 'request.pci_addrs', `${wire.length} PCI addresses; a bond takes at most ${limits.maxBondMembers}`);
  }
  const pciAddrs = wire.map((a, i) => {
    const why = checkPci(a);
    if (why) throw invalid(`pci_addrs[${i}]`, `${why}: not a PCI address`);
    return formatPci(a);
  });
  const dup = pciAddrs.find((a, i) => pciAddrs.indexOf(a) !== i);
  if (dup) throw invalid('pci_addrs', `${dup} is listed twice; list each bond member once`);

  const hasName = has(msg, 'name');
  const name = msg.name ?? '';
  if (hasName) {
    if (name === '') throw invalid('name', 'empty bond name; leave the field out for a single VF');
    if (Buffer.byteLength(name) > MAX_BOND_NAME) throw invalid('name', `bond name longer than ${MAX_BOND_NAME} bytes`);
    // it becomes a DPDK device name: nothing DPDK's devargs parsing reads (",", "=", spaces)
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw invalid('name', `bond name ${JSON.stringify(name)} may hold only letters, digits, "_", "-" and ".", e.g. net_bonding0`);
    if (pciAddrs.length === 1) throw invalid('name', 'a bond name needs two or more PCI addresses; leave it out for one VF');
  }
  const hasMode = has(msg, 'mode');
  const mode = msg.mode ?? 0;
  if (hasMode && mode > 6) {
    throw invalid('mode', `bond mode ${mode} is not 0..6 (round-robin, active-backup, balance, broadcast, 802.3ad, tlb, alb)`);
  }
  const bond = pciAddrs.length >= 2;
  if (hasMode && !bond) warnings.push('mode ignored: not a bond (fewer than two PCI addresses)');
  const bondFields = bond ? { ...(hasName ? { bondName: name } : {}), bondMode: hasMode ? mode : 1 } : {};

  const conditional = has(msg, 'conditional') ? msg.conditional !== false : true;

  const virtioId = (): number => {
    if (!has(msg, 'virtio_id')) throw invalid('virtio_id', `${opName} needs virtio_id, the relay number`);
    const id = msg.virtio_id as number;
    if (id >= limits.maxRelays) throw invalid('virtio_id', `relay number ${id} is out of range 0..${limits.maxRelays - 1}`);
    return id;
  };
  const vhostPath = (): string => {
    const p = msg.vhost_path ?? '';
    if (!has(msg, 'vhost_path') || p === '') throw invalid('vhost_path', `${opName} needs vhost_path, the vhost-user socket path`);
    if (!p.startsWith('/')) throw invalid('vhost_path', `"${p}" is not an absolute path`);
    if (p.includes('\0')) throw invalid('vhost_path', 'path contains a NUL byte');
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH) throw invalid('vhost_path', `path is longer than the ${MAX_SOCKET_PATH} bytes a unix socket path may have`);
    return p;
  };
  const ignoreVirtioId = (): void => {
    if (has(msg, 'virtio_id')) warnings.push(`virtio_id ignored: ${opName} pairs a socket with VFs, not a relay number`);
  };
  const needVf = (): void => {
    if (pciAddrs.length === 0) throw invalid('pci_addrs', `${opName} needs at least one PCI address`);
  };
  const needBondNameForRemove = (): void => {
    if (bond && !hasName) throw invalid('name', `${opName} with several PCI addresses removes a bond: give its name`);
    if (pciAddrs.length === 0 && !hasName) throw invalid('pci_addrs', `${opName} needs the VF's PCI address, or the bond's name`);
  };

  switch (op) {
    case Op.ADD: {
      const id = virtioId();
      needVf();
      return { op: { kind: 'addVf', req: { virtioId: id, pciAddrs, ...bondFields } }, conditional, warnings };
    }
    case Op.REMOVE: {
      const id = virtioId();
      needBondNameForRemove();
      return { op: { kind: 'removeVf', req: { virtioId: id, pciAddrs, ...(hasName ? { bondName: name } : {}) } }, conditional, warnings };
    }
    case Op.ADD_SOCK: {
      ignoreVirtioId();
      const p = vhostPath();
      needVf();
      return { op: { kind: 'addSocket', req: { vhostPath: p, pciAddrs, ...bondFields } }, conditional, warnings };
    }
    case Op.REMOVE_SOCK: {
      ignoreVirtioId();
      const p = vhostPath();
      needBondNameForRemove();
      return { op: { kind: 'removeSocket', req: { vhostPath: p, pciAddrs, ...(hasName ? { bondName: name } : {}) } }, conditional, warnings };
    }
    default: {
      // QUERY_PCI: only the path matters.
      return { op: { kind: 'queryPci', vhostPath: vhostPath() }, conditional, warnings };
    }
  }
}

const ok = (extra: Partial<PortControlResponse> = {}): PortControlResponse => ({ status: Status.OK, ...extra });

function fail(errno: number, source: string, message: string): PortControlResponse {
  return { status: Status.ERROR, error_code: errno, error_code_source: sourceText(source, message) };
}

function describe(op: PortOp): Record<string, unknown> {
  return op.kind === 'queryPci' ? { op: op.kind, vhostPath: op.vhostPath } : { op: op.kind, ...op.req };
}

async function run(v: ValidatedPortRequest, ctx: HandlerContext): Promise<PortControlResponse> {
  const { op } = v;
  const b = ctx.backend;
  let change: PortChange;
  switch (op.kind) {
    case 'queryPci': {
      const pci = await b.queryPci(op.vhostPath);
      if (pci === undefined || pci === '') throw new ControlError('ENOENT', 'queryPci', `no relay serves the socket ${op.vhostPath}`);
      return ok({ query_string: String(pci) });
    }
    case 'addVf':
      change = await b.addVf(op.req);
      if (change === 'unchanged' && !v.conditional) {
        throw new ControlError('EEXIST', 'addVf', `relay ${op.req.virtioId} already has ${op.req.pciAddrs.join(',')}; send conditional=true to accept a request that changes nothing`);
      }
      return ok();
    case 'removeVf':
      change = await b.removeVf(op.req);
      if (change === 'unchanged' && !v.conditional) {
        throw new ControlError('ENOENT', 'removeVf', `relay ${op.req.virtioId} has no ${op.req.bondName ?? op.req.pciAddrs.join(',')}; send conditional=true to accept a request that changes nothing`);
      }
      return ok();
    case 'addSocket':
      change = await b.addSocket(op.req);
      if (change === 'unchanged' && !v.conditional) {
        throw new ControlError('EEXIST', 'addSocket', `${op.req.vhostPath} is already paired with ${op.req.pciAddrs.join(',')}; send conditional=true to accept a request that changes nothing`);
      }
      return ok();
    case 'removeSocket':
      change = await b.removeSocket(op.req);
      if (change === 'unchanged' && !v.conditional) {
        throw new ControlError('ENOENT', 'removeSocket', `${op.req.vhostPath} is not paired; send conditional=true to accept a request that changes nothing`);
      }
      return ok();
  }
}

export async function servePortControl(msg: PortControlRequest, ctx: HandlerContext): Promise<PortControlResponse> {
  let v: ValidatedPortRequest;
  try {
    v = validatePortControl(msg, ctx);
  } catch (err) {
    const e = err as ControlError;
    ctx.log.warn({ endpoint: 'portControl', op: msg.op, field: e.source, err: e.message }, 'port control request refused');
    return fail(e.errno, e.source, e.message);
  }
  for (const w of v.warnings) ctx.log.warn({ endpoint: 'portControl', ...describe(v.op) }, w);
  try {
    const res = await run(v, ctx);
    ctx.log.info({ endpoint: 'portControl', ...describe(v.op), conditional: v.conditional }, 'port control request done');
    return res;
  } catch (err) {
    const source = err instanceof ControlError ? err.source : v.op.kind;
    const errno = errnoOf(err);
    ctx.log.warn({ endpoint: 'portControl', ...describe(v.op), conditional: v.conditional, errno, err: errorMessage(err) }, 'port control request failed');
    return fail(errno, source, errorMessage(err));
  }
}

const REJECT_ERRNO: Record<RejectReason, number> = { malformed: EBADMSG, oversized: EMSGSIZE, timeout: ETIMEDOUT, internal: EIO };

export const portControlEndpoint: EndpointHandler = endpoint({
  name: 'portControl',
  request: 'virtioforwarder.PortControlRequest',
  response: 'virtioforwarder.PortControlResponse',
  // virtio-forwarder takes 256 + 16 per bond member; leave room for long socket paths.
  maxRequestBytes: 4096,
  serve: servePortControl,
  reject: (reason, detail) => fail(REJECT_ERRNO[reason], 'request', detail),
});
