// Public surface of the engine facade: the Engine class, its types and its errors.
export { Engine, ENGINE_DEFAULTS, type EngineDeps } from './engine.js';
export { EngineError } from './errors.js';
export { buildEalArgs, allowedCpus, type EalPlan } from './eal.js';
export { engineSizing, MBUF_BYTES, type Sizing, type SizingInput } from './sizing.js';
export { validateRelayConfig, validateEngineOptions, validateVfSource } from './validate.js';
export type * from './types.js';
