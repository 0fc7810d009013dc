// The relay-to-pod join: kubelet's pod-resources API (v1 List, on the node's
// /var/lib/kubelet/pod-resources/kubelet.sock) says which container got which device; a
// relay's device ID is its name under its resourceName (src/deviceplugin), so a device of
// ours names the relay a pod uses. Read at most every few seconds, at scrape time.
import { fileURLToPath } from 'node:url';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export const DEFAULT_POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';

const PROTO_PATH = fileURLToPath(new URL('../../proto/podresources/v1/api.proto', import.meta.url));

interface ListResponse {
  pod_resources: { name: string; namespace: string; containers: { name: string; devices: { resource_name: string; device_ids: string[] }[] }[] }[];
}

type ListerClient = Client & {
  List(req: object, opts: { deadline: number }, cb: (err: ServiceError | null, res?: ListResponse) => void): void;
};

/** A device kubelet allocated to a container. */
export interface DeviceAllocation {
  resourceName: string;
  deviceId: string;
  namespace: string;
  pod: string;
  container: string;
}

/** One List call over the kubelet socket. Rejects when kubelet does not answer within timeoutMs. */
export function listPodResources(socketPath: string, timeoutMs = 2000): Promise<DeviceAllocation[]> {
  const pkg = loadPackageDefinition(loadSync(PROTO_PATH, { keepCase: true, longs: Number, defaults: true, arrays: true })) as unknown as {
    v1: { PodResourcesLister: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => ListerClient };
  };
  const client = new pkg.v1.PodResourcesLister(`unix://${socketPath}`, credentials.createInsecure());
  return new Promise<DeviceAllocation[]>((resolve, reject) => {
    client.List({}, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err || !res) {
        reject(new Error(`pod-resources List on ${socketPath} failed: ${err?.details || err?.message || 'no reply'}`));
        return;
      }
      const out: DeviceAllocation[] = [];
      for (const p of res.pod_resources)
        for (const c of p.containers)
          for (const d of c.devices)
            for (const id of d.device_ids) out.push({ resourceName: d.resource_name, deviceId: id, namespace: p.namespace, pod: p.name, container: c.name });
      resolve(out);
    });
  });
}

/** A pod-resources List at `socketPath` for each call (the device plugin's namespace check). */
export function holdersAt(socketPath: string): () => Promise<DeviceAllocation[]> {
  return () => listPodResources(socketPath);
}

/** The pod of each relay, from List results no older than maxAgeMs; failures are remembered
 *  (lastError) and leave the join empty rather than failing a scrape. */
export class RelayPodJoin {
  private cached: { at: number; list: DeviceAllocation[] } | undefined;
  private inflight: Promise<DeviceAllocation[]> | undefined;
  lastError: string | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly maxAgeMs = 5000,
    private readonly list: (socket: string) => Promise<DeviceAllocation[]> = listPodResources,
  ) {}

  /** Pods by relay: key `${resourceName}/${relayName}`. */
  async pods(): Promise<Map<string, DeviceAllocation>> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > this.maxAgeMs) {
      this.inflight ??= this.list(this.socketPath).finally(() => (this.inflight = undefined));
      try {
        this.cached = { at: now, list: await this.inflight };
        this.lastError = undefined;
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.cached = { at: now, list: [] };
      }
    }
    return new Map(this.cached.list.map((a) => [`${a.resourceName}/${a.deviceId}`, a]));
  }
}
