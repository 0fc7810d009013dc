// Error classes shared by every role: each carries a stable `code` that callers switch on.

export class VioError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
