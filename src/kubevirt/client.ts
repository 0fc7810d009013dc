// The virt-launcher side of the hook API: connects to a hook socket, asks Info, and calls the
// callbacks the way virt-launcher 1.7.0 does (newest listed version first). For tests and tools.
import * as grpc from '@grpc/grpc-js';
import { loadHookServices } from './protos.js';

export interface HookInfo {
  name: string;
  versions: string[];
  hookPoints: { name: string; priority: number }[];
}

/** virt-launcher's preference: the first of these that Info lists. */
const LAUNCHER_VERSIONS = ['v1alpha3', 'v1alpha2', 'v1alpha1'];

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

function call<T>(client: grpc.Client, method: string, req: object, deadlineMs: number): Promise<T> {
  const fn = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise<T>((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

export class HookClient {
  private readonly info: grpc.Client;
  private readonly v2: grpc.Client;
  private readonly v3: grpc.Client;

  constructor(readonly socketPath: string) {
    const s = loadHookServices();
    const target = `unix:${socketPath}`;
    const creds = grpc.credentials.createInsecure();
    this.info = new s.InfoClient(target, creds);
    this.v2 = new s.V1alpha2Client(target, creds);
    this.v3 = new s.V1alpha3Client(target, creds);
  }

  /** Info with virt-launcher's 1 s deadline. */
  getInfo(): Promise<HookInfo> {
    return call<HookInfo>(this.info, 'Info', {}, 1000);
  }

  /** The callbacks version virt-launcher would use with this sidecar. */
  async version(): Promise<string> {
    const info = await this.getInfo();
    const v = LAUNCHER_VERSIONS.find((x) => info.versions.includes(x));
    if (!v) throw new Error(`hook sidecar does not expose a supported version: ${info.versions.join(', ')}`);
    return v;
  }

  /** OnDefineDomain with virt-launcher's one-minute deadline; returns the new domain XML. */
  async onDefineDomain(domainXML: string, vmi: object | string, version?: string): Promise<string> {
    const v = version ?? (await this.version());
    const client = v === 'v1alpha3' ? this.v3 : v === 'v1alpha2' ? this.v2 : undefined;
    if (!client) throw new Error(`unsupported hook version ${v}`);
    const res = await call<{ domainXML: Buffer }>(
      client,
      'OnDefineDomain',
      { domainXML: Buffer.from(domainXML, 'utf8'), vmi: Buffer.from(typeof vmi === 'string' ? vmi : JSON.stringify(vmi), 'utf8') },
      60_000,
    );
    return Buffer.from(res.domainXML).toString('utf8');
  }

  shutdown(): Promise<void> {
    return call<object>(this.v3, 'Shutdown', {}, 60_000).then(() => undefined);
  }

  close(): void {
    this.info.close();
    this.v2.close();
    this.v3.close();
  }
}
