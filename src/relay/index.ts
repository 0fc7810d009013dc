// Public surface of the relay role: the node's desired state and its reconciliation.
export { RelayManager } from './manager.js';
export { normalizeSpec, relayVfOf, type VfRequest } from './spec.js';
export { DEFAULT_RELAY_DEFAULTS } from './contracts.js';
export type { RelayEngine, VfResolver, ResolvedVf, RelayDefaults, RelayManagerOptions } from './contracts.js';
export type * from './types.js';
export type { AttachConfig } from './store.js';
export { Reason, codeForReason } from './reasons.js';
export { FreezableView, viewWithout } from './view.js';
