// Creating VirtioRelays and timing them to Ready, the one home of that loop for the benchmarks
// and scale tests (bench/k8s-ready.ts, test/helpers/node-scale.ts, test/helpers/cluster-scale.ts):
// one watch of a namespace's VirtioRelays stamps each relay's first Ready, creates stamp when a
// request was sent and answered, and a wait ends when every named relay is Ready, fails at once
// naming a relay that is Failed, and lists now and then to cover a watch that was re-established.
import { Watch } from '@kubernetes/client-node';
import type { KubeClients } from '../../src/kube/index.js';
import { until } from './wait.js';

export interface RelayObject {
  metadata: { name: string };
  spec?: { nodeName?: string };
  status?: { phase?: string; message?: string };
}

const API = { group: 'vio4wd.io', version: 'v1alpha1', plural: 'virtiorelays' };

export class RelayWatch {
  /** relay -> performance.now() of its first Ready seen */
  readonly readyAt = new Map<string, number>();
  /** relay -> its create request sent, and answered */
  readonly sentAt = new Map<string, number>();
  readonly createdAt = new Map<string, number>();
  /** creates the apiserver answered 429 (APF: too many requests) and that were sent again */
  throttled = 0;
  private readonly aborts: (() => void)[] = [];
  private closed = false;

  private constructor(
    private readonly clients: KubeClients,
    readonly namespace: string,
    private readonly observe?: (obj: RelayObject, at: number) => void,
    private readonly creator: KubeClients = clients,
  ) {}

  /** Starts the watch; observe sees every object the watch or a list brings, with its time.
   *  creator: who creates the relays (default: the watch's client). */
  static async start(clients: KubeClients, namespace: string, observe?: (obj: RelayObject, at: number) => void, creator?: KubeClients): Promise<RelayWatch> {
    const w = new RelayWatch(clients, namespace, observe, creator);
    await w.watch();
    return w;
  }

  /** What the apiserver says of a relay: Ready stamps it once (until forget). */
  seen(obj: RelayObject): void {
    const at = performance.now();
    if (obj.status?.phase === 'Ready' && !this.readyAt.has(obj.metadata.name)) this.readyAt.set(obj.metadata.name, at);
    this.observe?.(obj, at);
  }

  /** The relays are to be timed again (moved, deleted, re-created). */
  forget(names: Iterable<string>): void {
    for (const n of names) this.readyAt.delete(n);
  }

  async create(body: { metadata: { name: string } }): Promise<void> {
    const name = body.metadata.name;
    this.sentAt.set(name, performance.now());
    // a 429 (APF rejected it) is sent again after the Retry-After the apiserver asks for, as
    // client-go and kubectl do; the relay's time still counts from the first send
    for (;;) {
      try {
        await this.creator.custom.createNamespacedCustomObject({ ...API, namespace: this.namespace, body });
        break;
      } catch (err) {
        const e = err as { code?: number; headers?: Record<string, string> };
        if (e.code !== 429) throw err;
        this.throttled++;
        await new Promise((r) => setTimeout(r, Math.min(10, Number(e.headers?.['retry-after'] ?? 1) || 1) * 1000));
      }
    }
    this.createdAt.set(name, performance.now());
  }

  /** Creates every body, inFlight requests at a time; resolves with the ms it took. */
  async createAll(bodies: { metadata: { name: string } }[], inFlight: number): Promise<number> {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(inFlight, bodies.length) }, async () => {
        while (next < bodies.length) await this.create(bodies[next++]!);
      }),
    );
    return performance.now() - t0;
  }

  async list(): Promise<RelayObject[]> {
    const l = (await this.clients.custom.listNamespacedCustomObject({ ...API, namespace: this.namespace })) as { items: RelayObject[] };
    for (const r of l.items) this.seen(r);
    return l.items;
  }

  /** Resolves when every named relay was seen Ready; rejects at once when one of them is Failed
   *  (a list every listEveryMs tells), or after timeoutMs naming how many are not Ready. */
  async untilReady(names: readonly string[], o: { timeoutMs: number; what?: string; listEveryMs?: number }): Promise<void> {
    let listed = performance.now();
    let failed: string | undefined;
    const missing = (): string[] => names.filter((n) => !this.readyAt.has(n));
    await until(
      `${o.what ?? 'relays'}: ${names.length} VirtioRelays Ready`,
      async () => {
        if (missing().length === 0) return true;
        if (performance.now() - listed > (o.listEveryMs ?? 5000)) {
          listed = performance.now();
          const want = new Set(missing());
          const bad = (await this.list()).filter((r) => want.has(r.metadata.name) && r.status?.phase === 'Failed');
          if (bad.length) failed = `${bad.length} Failed, e.g. ${bad.slice(0, 3).map((r) => `${r.metadata.name}: ${r.status?.message ?? ''}`).join('; ')}`;
        }
        return missing().length === 0;
      },
      {
        timeoutMs: o.timeoutMs,
        intervalMs: 20,
        failIf: () => failed,
        detail: () => `${missing().length} of ${names.length} not Ready, e.g. ${missing().slice(0, 3).join(', ')}`,
      },
    );
  }

  stop(): void {
    this.closed = true;
    for (const a of this.aborts.splice(0)) a();
  }

  private async watch(): Promise<void> {
    const req = await new Watch(this.clients.kc).watch(
      `/apis/${API.group}/${API.version}/namespaces/${this.namespace}/${API.plural}`,
      {},
      (_type: string, obj: RelayObject) => this.seen(obj),
      // the apiserver ends watches now and then: start another (lists cover the gap)
      () => {
        if (!this.closed) setTimeout(() => void this.watch().catch(() => undefined), 200);
      },
    );
    this.aborts.push(() => req.abort());
  }
}
