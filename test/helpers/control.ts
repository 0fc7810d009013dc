// Drives virtio-forwarder's ZeroMQ control protocol against any server that speaks it: the
// control server with MemoryBackend in tests, or the real agent (runControlScenario,
// runControlFuzz). Every reply is decoded as the protocol requires (proto2: a missing required
// field throws) and checked with verify.
// By purpose: control/memory-backend.ts (an in-memory ControlBackend), control/replies.ts (reply
// decoding and checks, raw round trips), control/scenario.ts (every operation end to end),
// control/fuzz.ts (hostile requests).
export { MemoryBackend } from './control/memory-backend.js';
export { REQUEST_OF, RESPONSE_OF, counters, decodeReply, rawRequest, type ResponseName } from './control/replies.js';
export { runControlScenario, type ControlScenarioOptions } from './control/scenario.js';
export { fuzzCases, isErrorReply, mustRefuse, prng, runControlFuzz, type FuzzCase, type FuzzKind, type FuzzLimits, type FuzzReport } from './control/fuzz.js';
