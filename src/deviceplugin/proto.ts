// Loads the kubelet device plugin API (proto/deviceplugin/v1beta1/api.proto) for @grpc/grpc-js.
// Message and service types come from ./gen, generated from the same file with the same options.
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import type { ProtoGrpcType } from './gen/api.js';

export type * from './gen/v1beta1/AllocateRequest.js';
export type * from './gen/v1beta1/AllocateResponse.js';
export type * from './gen/v1beta1/ContainerAllocateResponse.js';
export type * from './gen/v1beta1/ContainerPreferredAllocationRequest.js';
export type * from './gen/v1beta1/Device.js';
export type * from './gen/v1beta1/DevicePlugin.js';
export type * from './gen/v1beta1/DevicePluginOptions.js';
export type * from './gen/v1beta1/Empty.js';
export type * from './gen/v1beta1/ListAndWatchResponse.js';
export type * from './gen/v1beta1/Mount.js';
export type * from './gen/v1beta1/PreferredAllocationRequest.js';
export type * from './gen/v1beta1/PreferredAllocationResponse.js';
export type * from './gen/v1beta1/PreStartContainerRequest.js';
export type * from './gen/v1beta1/PreStartContainerResponse.js';
export type * from './gen/v1beta1/RegisterRequest.js';
export type * from './gen/v1beta1/Registration.js';

/** The .proto file; two levels up from both src/deviceplugin and dist/deviceplugin. */
export const PROTO_PATH = fileURLToPath(new URL('../../proto/deviceplugin/v1beta1/api.proto', import.meta.url));

/** Must match the flags in gen/generate.sh: the generated types describe exactly this shape. */
export const LOADER_OPTIONS: Options = { keepCase: true, longs: Number, defaults: true, arrays: true };

let loaded: ProtoGrpcType['v1beta1'] | undefined;

/** The v1beta1 package: service constructors (Registration, DevicePlugin) and their definitions. */
export function v1beta1(): ProtoGrpcType['v1beta1'] {
  loaded ??= (loadPackageDefinition(loadSync(PROTO_PATH, LOADER_OPTIONS)) as unknown as ProtoGrpcType).v1beta1;
  return loaded;
}
