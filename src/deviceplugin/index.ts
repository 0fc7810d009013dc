// Kubelet device plugin (API v1beta1): relays as allocatable devices, one resource per pool.
export { DevicePluginManager, type DevicePluginManagerOptions, type PoolState } from './manager.js';
export {
  API_VERSION,
  CONTAINER_SOCKET_ROOT,
  DEFAULT_DEVICE_INFO_DIR,
  DEFAULT_DEVICE_PLUGIN_DIR,
  DEFAULT_RESOURCE_NAME,
  KUBELET_SOCKET,
} from './constants.js';
export { DevicePluginError, type DevicePluginErrorCode } from './errors.js';
export { deviceInfo, deviceInfoFileName, deviceEnvPrefix, podMode, podSocketDir, podSocketPath, type VhostUserDeviceInfo } from './allocate.js';
export { checkHolders, relayNamespace, type DeviceHolder, type ListHolders } from './holders.js';
export { parsePool, resourceNameOf, type Pool } from './pool.js';
export { preferredAllocation, type PreferredRequest } from './preferred.js';
export { PROTO_PATH, LOADER_OPTIONS, v1beta1 } from './proto.js';
