// Public surface of the relay role: the node's desired state and its reconciliation.
export { RelayManager, normalizeSpec, DEFAULT_RELAY_DEFAULTS } from './manager.js';
export type { RelayEngine, VfResolver, ResolvedVf, RelayDefaults, RelayManagerOptions } from './manager.js';
export type * from './types.js';
export { Reason, codeForReason } from './reasons.js';
