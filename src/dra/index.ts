// Dynamic Resource Allocation (resource.k8s.io/v1): relays as DRA devices in ResourceSlices, and
// the kubelet plugin that prepares them for a claim (docs/dra.md).
export * from './constants.js';
export { ClaimConfigError, configFor, parseRelayConfig, relayConfigSchema, type RelayConfig } from './config.js';
export { cdiQualifiedName, cdiSpec, cdiSpecPath, draPodSocketDir, podMetadataPath, type CdiSpec, type PreparedDevice } from './cdi.js';
export { deviceAttributes, deviceNameOf, draPoolName, poolSlices, publishedDevices, relayNameOfVf, vfDeviceName, SLICE_LABEL, type DeviceAttribute, type FreeVf, type RelayHardware, type ResourceSliceBody } from './devices.js';
export { DraDriver, type ClaimApi, type ClaimRef, type DraDriverOptions, type PoolLimits, type ResourceClaim, type VfRelays } from './driver.js';
export { kubeClaimApi, kubeSliceApi, type SliceApi } from './kube.js';
export { KubeletPlugin, type KubeletPluginOptions, type KubeletPluginState } from './plugin.js';
export { ResourceSlicePublisher, type PublisherOptions } from './publisher.js';
export { DeviceHealthReporter, type HealthDevice } from './health.js';
