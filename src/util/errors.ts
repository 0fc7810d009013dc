// Error classes shared by every role: each carries a stable `code` that callers switch on, and
// errorCode() is the one way to read the code of any error (ours, Node's, the addon's).
import type { constants } from 'node:os';

/** errno names, as Node's system errors and the engine's stable codes use them. */
export type SystemErrorCode = keyof typeof constants.errno;

/** Codes of vio4wd's own errors that are not errno names. */
export type VioErrorCode =
  /** the engine was not started (engine) */
  | 'ENOTSTARTED'
  /** the relay manager is closing */
  | 'ESHUTDOWN'
  /** the KubeVirt sidecar found no socket for an interface */
  | 'ENOSOCKET'
  /** vfio-pci without an IOMMU */
  | 'ENOIOMMU'
  /** binding a VF to a driver failed (sriov) */
  | 'EBIND'
  | 'EUNBIND'
  | 'ENODRIVER'
  | 'ENOVF'
  /** setting a VF's MAC through its PF failed (sriov) */
  | 'EVFMAC'
  /** programming a VF for a pod attachment (MAC, VLAN, spoof check) failed (sriov) */
  | 'EVFPROG'
  | 'EIPLINK'
  /** a program the agent runs is missing */
  | 'ENOCMD'
  /** the object changed meanwhile (409) / is gone (404) (kube) */
  | 'ECONFLICT'
  | 'ENOTFOUND'
  /** device plugin requests */
  | 'EUNKNOWNDEVICE'
  | 'EUNHEALTHY'
  | 'EDEVINFO'
  /** a pod of another namespace holds a VirtioRelay's relay / kubelet lists no holder (device plugin) */
  | 'EFORBIDDEN'
  | 'ENOHOLDER';

export type ErrorCode = SystemErrorCode | VioErrorCode;

export class VioError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VioError';
    this.code = code;
  }
}

/** Bad user input (config file, CR, CLI flag). `field` names where, the message says the fix. */
export class ValidationError extends VioError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('EINVAL', `${field}: ${message}`);
    this.name = 'ValidationError';
    this.field = field;
  }
}

/** The string `code` of an error (VioError, a Node system error, the addon's), or undefined. */
export function errorCode(err: unknown): ErrorCode | undefined {
  const c = (err as { code?: unknown } | null | undefined)?.code;
  return typeof c === 'string' ? (c as ErrorCode) : undefined;
}

/** A code another process sent (a control reply's errno name, a status name): kept as it came. */
export function remoteErrorCode(name: string): ErrorCode {
  return name as ErrorCode;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
