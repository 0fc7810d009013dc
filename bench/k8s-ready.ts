// Kubernetes benchmark: how long from creating a VirtioRelay until it is Ready, with the real
// kube-apiserver, the real agent and the real engine (VF stand-ins are net_null devices, so no
// kernel interface per relay). Prints one table; figures go into bench/RESULTS.md.
//
//   node --import tsx bench/k8s-ready.ts [--sequential 100] [--bulk 64,256]
//
// "create" is measured from the moment the create request is sent; "kubectl" runs a sample of
// relays through `kubectl apply` (which adds kubectl's own start-up, ~0.3-1 s on this machine).
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startKube } from '../test/helpers/kube.js';
import { testTempDir } from '../test/helpers/netns.js';
import { AgentProcess } from '../test/helpers/agent.js';
import { kubeClients } from '../src/kube/index.js';
import { TEST_VIRTUAL_DEVICES, testPoolPolicy } from '../test/helpers/policy.js';
import { RelayWatch } from '../test/helpers/relay-watch.js';
import { pct } from '../test/helpers/node-scale.js';

const { values } = parseArgs({
  options: { sequential: { type: 'string', default: '100' }, bulk: { type: 'string', default: '64,256' }, kubectl: { type: 'string', default: '10' } },
});
const NS = 'bench';
const NODE = 'bench-node';

const kube = await startKube();
const tmp = testTempDir('k8sbench');
let agent: AgentProcess | undefined;
let relays: RelayWatch | undefined;
try {
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io');
  await kube.kubectl('create', 'namespace', NS);
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([NS])) });
  const sockets = join(tmp.path, 'sockets');
  mkdirSync(sockets);
  agent = await AgentProcess.start({
    workDir: tmp.path,
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      control: { enabled: false },
      metrics: { address: '127.0.0.1:0' },
      kubernetes: { enabled: true, kubeconfig: kube.kubeconfigPath, socketDir: sockets, allowVirtualDevices: TEST_VIRTUAL_DEVICES },
      devicePlugin: { enabled: false },
    },
    args: ['--node-name', NODE],
  });
  const clients = kubeClients(kube.kubeconfigPath);
  // one watch timestamps every Ready transition (test/helpers/relay-watch.ts)
  const w = await RelayWatch.start(clients, NS);
  relays = w;
  // queues: 1 or 2 one at a time; 1 each in the bulk runs, so that 256 relays fit the engine's
  // default mbuf pool (256 queue pairs; one more is refused with OutOfHugepages, as it should be)
  const body = (name: string, i: number, queues = 1 + (i % 2)) => ({
    apiVersion: 'vio4wd.io/v1alpha1',
    kind: 'VirtioRelay',
    metadata: { name, namespace: NS },
    spec: { nodeName: NODE, vf: { devargs: `net_null_${name.replace(/-/g, '_')},no-rx=1` }, queues },
  });
  const deleteAll = async () => {
    await kube.kubectl('delete', 'virtiorelays', '--all', '-n', NS, '--wait=true', '--timeout=300s');
    w.forget([...w.readyAt.keys()]);
  };

  const rows: string[] = [];
  // 1) one at a time
  const seq: number[] = [];
  const n = Number(values.sequential);
  for (let i = 0; i < n; i++) {
    const name = `seq-${i}`;
    await w.create(body(name, i));
    await w.untilReady([name], { timeoutMs: 60_000 });
    seq.push(w.readyAt.get(name)! - w.sentAt.get(name)!);
    // keep the node's relay count low: this measures one relay's path, not capacity
    await clients.custom.deleteNamespacedCustomObject({ group: 'vio4wd.io', version: 'v1alpha1', namespace: NS, plural: 'virtiorelays', name });
  }
  rows.push(`create -> Ready, one at a time (${n} relays): median ${pct(seq, 50).toFixed(0)} ms, p99 ${pct(seq, 99).toFixed(0)} ms, max ${Math.max(...seq).toFixed(0)} ms`);
  await deleteAll();

  // 2) through kubectl apply, as a user does it
  const kc: number[] = [];
  for (let i = 0; i < Number(values.kubectl); i++) {
    const name = `kubectl-${i}`;
    const t0 = performance.now();
    await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(body(name, i)) });
    await w.untilReady([name], { timeoutMs: 60_000 });
    kc.push(w.readyAt.get(name)! - t0);
  }
  if (kc.length) rows.push(`kubectl apply -> Ready (${kc.length} relays): median ${pct(kc, 50).toFixed(0)} ms, p99 ${pct(kc, 99).toFixed(0)} ms`);
  await deleteAll();

  // 3) many at once
  for (const count of values.bulk.split(',').map(Number).filter(Boolean)) {
    const names = Array.from({ length: count }, (_, i) => `bulk${count}-${i}`);
    const t0 = performance.now();
    const created = await w.createAll(names.map((nm) => body(nm, 0, 1)), count);
    await w.untilReady(names, { timeoutMs: 300_000, what: `${count} at once` });
    const all = Math.max(...names.map((nm) => w.readyAt.get(nm)!)) - t0;
    const each = names.map((nm) => w.readyAt.get(nm)! - t0);
    rows.push(`${count} relays at once: all Ready in ${(all / 1000).toFixed(2)} s (created in ${(created / 1000).toFixed(2)} s; median relay ${(pct(each, 50) / 1000).toFixed(2)} s)`);
    await deleteAll();
  }
  process.stdout.write(`\nvio4wd Kubernetes benchmark (kube-apiserver ${kube.version}, real agent + engine, net_null VF stand-ins)\n`);
  for (const r of rows) process.stdout.write(`  ${r}\n`);
} finally {
  relays?.stop();
  await agent?.stop();
  await kube.stop();
  tmp.remove();
}
