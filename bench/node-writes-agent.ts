// One node's agent, Kubernetes side, for bench/node-writes.ts: the node reconciler of the vio4wd
// tree named by --tree (this one, or an older checkout to compare with), as `vio4wd agent
// --kubernetes` runs it, over the in-memory engine (the apiserver traffic of an agent at rest comes
// from the reconciler alone), with its defaults for every interval. Runs until SIGTERM.
//
//   node --import tsx bench/node-writes-agent.ts --tree DIR --kubeconfig FILE --node NAME --socket-dir DIR
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const { values } = parseArgs({
  options: {
    tree: { type: 'string', default: '.' },
    kubeconfig: { type: 'string' },
    node: { type: 'string', default: 'bench-node' },
    'socket-dir': { type: 'string' },
    'lease-namespace': { type: 'string', default: 'default' },
    vfs: { type: 'string', default: '32' },
  },
});
if (!values.kubeconfig || !values['socket-dir']) throw new Error('--kubeconfig and --socket-dir are needed');
const tree = resolve(values.tree);
const load = <T>(rel: string): Promise<T> => import(pathToFileURL(resolve(tree, rel)).href) as Promise<T>;

/* eslint-disable @typescript-eslint/no-explicit-any -- modules of another checkout, loaded by path */
const { NodeReconciler } = await load<any>('src/agent/node/reconciler.ts');
const { RelayManager } = await load<any>('src/relay/index.ts');
const { MemEngine } = await load<any>('test/helpers/mem-engine.ts');
const { kubeClients } = await load<any>('src/kube/index.ts');
const { silentLogger } = await load<any>('src/util/log.ts');
/* eslint-enable @typescript-eslint/no-explicit-any */

// a node as an agent reports it: VFs on two PFs and NUMA nodes, hugepages on both
const vfs = Array.from({ length: Number(values.vfs) }, (_, i) => ({
  pciAddress: `0000:${i % 2 ? 'af' : '3b'}:${String(2 + Math.floor(i / 16)).padStart(2, '0')}.${(i >> 1) % 8}`,
  pfName: i % 2 ? 'ens2f0' : 'ens1f0',
  vfIndex: i >> 1,
  vendor: '8086',
  device: '154c',
  numaNode: i % 2,
  driver: 'vfio-pci',
  mac: `52:54:00:00:00:${(i & 0xff).toString(16).padStart(2, '0')}`,
}));
const inventory = {
  vfs,
  hugepages: [
    { numaNode: 0, pageSizeKiB: 2048, total: 1024, free: 848 },
    { numaNode: 1, pageSizeKiB: 2048, total: 1024, free: 1024 },
  ],
  workerCpus: [2, 3],
  engine: { up: true, dpdkVersion: '22.11.11', agentVersion: 'bench' },
};

const log = silentLogger();
const relays = new RelayManager({ engine: new MemEngine(), logger: log });
const rec = new NodeReconciler({
  clients: kubeClients(values.kubeconfig),
  nodeName: values.node,
  relays,
  logger: log,
  socketDir: values['socket-dir'],
  // an older tree ignores what it does not know
  leaseNamespace: values['lease-namespace'],
  nodeStatus: async () => structuredClone(inventory),
});
await rec.start();
process.stdout.write('ready\n');
await new Promise<void>((done) => process.once('SIGTERM', () => done()));
await rec.stop();
await relays.close();
