// Fixed names of vio4wd's DRA driver: the driver name, kubelet's directories, the CDI kind and
// the file names the driver writes. docs/dra.md documents each.

/** The DRA driver name: ResourceSlices' spec.driver, DeviceClass selectors, opaque config. */
export const DRIVER_NAME = 'vio4wd.io';
/** kubelet's plugin-registration directory (its plugin watcher looks for sockets here). */
export const DEFAULT_REGISTRY_DIR = '/var/lib/kubelet/plugins_registry';
/** The driver's own directory for its DRA service socket (kubelet dials the endpoint it names). */
export const DEFAULT_PLUGIN_DIR = `/var/lib/kubelet/plugins/${DRIVER_NAME}`;
/** Where the CDI specs go: a CDI-enabled runtime (containerd >= 1.7, CRI-O) reads this directory. */
export const DEFAULT_CDI_DIR = '/var/run/cdi';
/** Host directory of the per-claim device-metadata files the CDI specs mount into pods. */
export const DEFAULT_METADATA_DIR = '/var/run/vio4wd/dra';
/** The driver's checkpoint of prepared claims. */
export const DEFAULT_STATE_PATH = '/var/lib/vio4wd/dra-claims.json';
/** Registration socket file name, in the registry directory. */
export const REGISTRATION_SOCKET = `${DRIVER_NAME}-reg.sock`;
/** DRA service socket file name, in the plugin directory. */
export const DRA_SOCKET = 'dra.sock';
/** CDI kind of every device vio4wd prepares: "vio4wd.io/relay=<name>". */
export const CDI_KIND = `${DRIVER_NAME}/relay`;
/** kubelet's plugin type for DRA drivers. */
export const PLUGIN_TYPE = 'DRAPlugin';
/** The gRPC services the plugin offers, newest first, as registration lists them. */
export const SUPPORTED_SERVICES = ['v1.DRAPlugin', 'v1beta1.DRAPlugin'] as const;
/** The opaque configuration a claim or class hands the driver. */
export const CONFIG_API_VERSION = 'vio4wd.io/v1alpha1';
export const CONFIG_KIND = 'RelayConfig';
/** KEP-5304 device metadata, as KubeVirt's network binding reads it (src/kubevirt/sources.ts). */
export const POD_METADATA_ROOT = '/var/run/kubernetes.io/dra-device-attributes';
export const METADATA_API_VERSION = 'metadata.resource.k8s.io/v1alpha1';
/** Devices in one ResourceSlice (the API's limit is 128). */
export const MAX_DEVICES_PER_SLICE = 128;
/** kubelet 1.34 waits 45 s for a call; the driver answers well before. */
export const CALL_BUDGET_MS = 30_000;
