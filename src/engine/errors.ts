// Errors of the engine facade: every one carries a stable EngineErrorCode in `code`.
import { VioError, errorCode, errorMessage } from '../util/errors.js';
import type { EngineErrorCode } from './types.js';

export class EngineError extends VioError {
  declare readonly code: EngineErrorCode;
  /** The RelayConfig/EngineOptions field at fault, when one is. */
  readonly field?: string;
  constructor(code: EngineErrorCode, message: string, opts: { field?: string; cause?: unknown } = {}) {
    super(code, opts.field ? `${opts.field}: ${message}` : message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'EngineError';
    if (opts.field) this.field = opts.field;
  }
}

const CODES: ReadonlySet<string> = new Set(['EALREADY', 'ENOTSTARTED', 'EINVAL', 'EEXIST', 'ENOENT', 'ENODEV', 'ENOMEM', 'EIO']);

/** Turns what the addon threw (an Error with a `code`) into an EngineError. */
export function fromNative(err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  const c = errorCode(err);
  const code = c !== undefined && CODES.has(c) ? (c as EngineErrorCode) : 'EIO';
  const message = errorMessage(err);
  return new EngineError(code, message, { cause: err });
}
