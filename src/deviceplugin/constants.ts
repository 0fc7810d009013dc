// Fixed names of the kubelet device plugin API and of what vio4wd puts into pods.

/** The API version vio4wd registers with. */
export const API_VERSION = 'v1beta1';
export const DEFAULT_DEVICE_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';
/** kubelet's Registration socket, inside the device-plugin directory. */
export const KUBELET_SOCKET = 'kubelet.sock';
/** Device-plugin device-info files (network plumbing WG device-info spec v1.1.0, section 4.1). */
export const DEFAULT_DEVICE_INFO_DIR = '/var/run/k8s.cni.cncf.io/devinfo/dp';
export const DEVICE_INFO_VERSION = '1.1.0';
/** Where a pod finds each allocated relay's socket directory: <root>/<deviceID>. */
export const CONTAINER_SOCKET_ROOT = '/var/run/vio4wd';
export const DEFAULT_RESOURCE_NAME = 'vio4wd.io/vhostuser';
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';
/** kubelet's limit on Device.ID. */
export const MAX_DEVICE_ID_LENGTH = 63;
