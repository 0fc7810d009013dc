// errno-style error codes for control replies: the server's own request checks raise
// ControlError; backend errors are mapped by their `code` (VioError codes are errno names).
import { constants } from 'node:os';
import { VioError, errorCode, remoteErrorCode } from '../util/errors.js';

const ERRNO = constants.errno as Record<string, number>;

export const EIO = ERRNO.EIO ?? 5;
export const EINVAL = ERRNO.EINVAL ?? 22;
export const EEXIST = ERRNO.EEXIST ?? 17;
export const ENOENT = ERRNO.ENOENT ?? 2;
export const EBADMSG = ERRNO.EBADMSG ?? 74;
export const EMSGSIZE = ERRNO.EMSGSIZE ?? 90;
export const ETIMEDOUT = ERRNO.ETIMEDOUT ?? 110;
export const EOPNOTSUPP = ERRNO.EOPNOTSUPP ?? 95;
export const E2BIG = ERRNO.E2BIG ?? 7;

/** A refused request: `source` names the field or call (it goes into error_code_source). */
export class ControlError extends VioError {
  readonly errno: number;
  readonly source: string;
  /** errno: a name ("EINVAL") or a number. */
  constructor(errno: string | number, source: string, message: string) {
    const n = typeof errno === 'number' ? errno : (ERRNO[errno] ?? EIO);
    super(remoteErrorCode(errnoName(n)), message);
    this.name = 'ControlError';
    this.errno = n;
    this.source = source;
  }
}

/** The errno an error stands for: its code if that is an errno name, else |errno|, else EIO. */
export function errnoOf(err: unknown): number {
  if (err instanceof ControlError) return err.errno;
  const code = errorCode(err);
  if (code !== undefined && ERRNO[code] !== undefined) return ERRNO[code] as number;
  const e = err as { errno?: unknown } | null;
  if (e && typeof e.errno === 'number' && Number.isInteger(e.errno) && e.errno !== 0) return Math.abs(e.errno);
  return EIO;
}

/** errno number -> name, for humans ("ENOENT"); the number itself when unknown. */
export function errnoName(n: number): string {
  for (const [k, v] of Object.entries(ERRNO)) if (v === n) return k;
  return String(n);
}
