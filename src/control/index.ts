// Public surface of the ZeroMQ control role (virtio-forwarder-compatible port control, stats,
// core scheduling and config endpoints). The agent's wiring implements ControlBackend.
export * from './types.js';
export { ControlServer, startControlServer } from './server.js';
export { ControlClient, roundTrip, DEFAULT_TIMEOUT_MS } from './client.js';
export { codec, has, toNumber, WireError, PROTO_FILE } from './proto.js';
export { ControlError, errnoName, errnoOf } from './errno.js';
export { formatPci, parsePci } from './pci.js';
export { validatePortControl } from './portControl.js';
export { IPC_DIR_MODE, IPC_SOCKET_MODE, ipcPath } from './ipc.js';
export * from './wire.gen.js';
