// A stand-in kubelet for its pod-resources API v1: a real gRPC server on a unix socket, built
// from kubelet's own proto (test/fixtures/podresources), answering List with what the test sets.
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, loadPackageDefinition, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const PROTO = fileURLToPath(new URL('../fixtures/podresources/kubelet-v1.proto', import.meta.url));

/** kubelet's List reply (snake_case, as on the wire). */
export interface ListReply {
  pod_resources: { name: string; namespace: string; containers: { name: string; devices?: { resource_name: string; device_ids: string[]; topology?: unknown }[]; [k: string]: unknown }[] }[];
}

/** A device of a pod's container, for the common reply shape. */
export interface Holding {
  namespace: string;
  pod: string;
  resourceName: string;
  deviceIds: string[];
}

/** The List reply that gives each pod its devices (one container "compute"). */
export function listReply(holdings: Holding[]): ListReply {
  return {
    pod_resources: holdings.map((h) => ({
      name: h.pod,
      namespace: h.namespace,
      containers: [{ name: 'compute', devices: [{ resource_name: h.resourceName, device_ids: h.deviceIds }] }],
    })),
  };
}

export class PodResourcesServer {
  /** List calls answered. */
  calls = 0;

  private constructor(
    private readonly server: Server,
    readonly socket: string,
  ) {}

  /** Serves List on `socket` with reply() at the time of each call. */
  static async start(socket: string, reply: () => ListReply): Promise<PodResourcesServer> {
    const pkg = loadPackageDefinition(loadSync(PROTO, { keepCase: true, longs: Number, defaults: true, arrays: true })) as unknown as {
      v1: { PodResourcesLister: { service: ServiceDefinition } };
    };
    const server = new Server();
    const me = new PodResourcesServer(server, socket);
    const impl: UntypedServiceImplementation = {
      List: (_call: unknown, cb: (err: null, res: unknown) => void) => {
        me.calls++;
        cb(null, reply());
      },
      GetAllocatableResources: (_call: unknown, cb: (err: null, res: unknown) => void) => cb(null, { devices: [], cpu_ids: [] }),
    };
    server.addService(pkg.v1.PodResourcesLister.service, impl);
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    return me;
  }

  stop(): Promise<void> {
    return new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }
}
