// Loads kubelet's DRA service (proto/dra/v1 and v1beta1), its device health service
// (proto/dra-health/v1alpha1) and plugin registration (proto/pluginregistration/v1) for @grpc/grpc-js. The messages are few: their shapes are
// written here by hand, matching the loader options below.
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

const protoPath = (p: string): string => fileURLToPath(new URL(`../../proto/${p}`, import.meta.url));

export const DRA_PROTO_V1 = protoPath('dra/v1/api.proto');
export const DRA_PROTO_V1BETA1 = protoPath('dra/v1beta1/api.proto');
export const REGISTRATION_PROTO = protoPath('pluginregistration/v1/api.proto');
export const HEALTH_PROTO = protoPath('dra-health/v1alpha1/api.proto');

export const LOADER_OPTIONS: Options = { keepCase: true, longs: Number, defaults: true, arrays: true };

export interface Claim {
  namespace: string;
  uid: string;
  name: string;
}
export interface NodePrepareResourcesRequest {
  claims: Claim[];
}
export interface NodePrepareResourcesResponse {
  claims: Record<string, { devices: { request_names: string[]; pool_name: string; device_name: string; cdi_device_ids: string[] }[]; error: string }>;
}
export interface NodeUnprepareResourcesRequest {
  claims: Claim[];
}
export interface NodeUnprepareResourcesResponse {
  claims: Record<string, { error: string }>;
}
/** HealthStatus as the loader passes enums (names). */
export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY';
export interface DeviceHealth {
  device: { pool_name: string; device_name: string };
  health: HealthStatus;
  last_updated_time: number;
}
export interface NodeWatchResourcesResponse {
  devices: DeviceHealth[];
}
export interface PluginInfo {
  type: string;
  name: string;
  endpoint: string;
  supported_versions: string[];
}
export interface RegistrationStatus {
  plugin_registered: boolean;
  error: string;
}

type Ctor = { service: ServiceDefinition } & (new (address: string, creds: unknown) => unknown);

function walk(def: unknown, path: string): Ctor {
  let cur = def as Record<string, unknown>;
  for (const part of path.split('.')) cur = cur[part] as Record<string, unknown>;
  return cur as unknown as Ctor;
}

type Services = { v1: Ctor; v1beta1: Ctor; registration: Ctor; health: Ctor };
let cache: Services | undefined;

/** The service constructors: DRAPlugin v1 and v1beta1 (same messages), DRAResourceHealth and Registration. */
export function services(): Services {
  if (!cache) {
    const pkg = loadPackageDefinition(loadSync([DRA_PROTO_V1, DRA_PROTO_V1BETA1, REGISTRATION_PROTO, HEALTH_PROTO], LOADER_OPTIONS));
    cache = {
      v1: walk(pkg, 'k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin'),
      v1beta1: walk(pkg, 'k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin'),
      registration: walk(pkg, 'pluginregistration.Registration'),
      health: walk(pkg, 'v1alpha1.DRAResourceHealth'),
    };
  }
  return cache;
}
