// Loads vio4wd's own copies of KubeVirt's hook API protos (proto/kubevirt) for grpc-js.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Hook API versions the sidecar implements, newest first (virt-launcher picks the newest). */
export const HOOK_VERSIONS = ['v1alpha3', 'v1alpha2'] as const;
export const ON_DEFINE_DOMAIN = 'OnDefineDomain';
export const SHUTDOWN = 'Shutdown';

/** proto/kubevirt, found from src/kubevirt (tsx) or dist/kubevirt (compiled). */
export function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = join(here, '..', '..', 'proto', 'kubevirt');
  if (!existsSync(join(dir, 'info.proto'))) {
    throw new Error(`KubeVirt hook protos not found in ${dir}: the package must ship proto/kubevirt next to dist/`);
  }
  return dir;
}

export interface HookServices {
  info: grpc.ServiceDefinition;
  v1alpha2: grpc.ServiceDefinition;
  v1alpha3: grpc.ServiceDefinition;
  /** Client constructors, for tests and tools that play virt-launcher. */
  InfoClient: grpc.ServiceClientConstructor;
  V1alpha2Client: grpc.ServiceClientConstructor;
  V1alpha3Client: grpc.ServiceClientConstructor;
}

let cached: HookServices | undefined;

export function loadHookServices(): HookServices {
  if (cached) return cached;
  const dir = protoDir();
  const def = protoLoader.loadSync(['info.proto', 'v1alpha2.proto', 'v1alpha3.proto'], {
    includeDirs: [dir],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    kubevirt: { hooks: Record<'info' | 'v1alpha2' | 'v1alpha3', Record<string, grpc.ServiceClientConstructor>> };
  };
  const h = pkg.kubevirt.hooks;
  const InfoClient = h.info.Info!;
  const V1alpha2Client = h.v1alpha2.Callbacks!;
  const V1alpha3Client = h.v1alpha3.Callbacks!;
  cached = {
    info: InfoClient.service,
    v1alpha2: V1alpha2Client.service,
    v1alpha3: V1alpha3Client.service,
    InfoClient,
    V1alpha2Client,
    V1alpha3Client,
  };
  return cached;
}
