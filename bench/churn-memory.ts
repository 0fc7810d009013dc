// Memory profile of the node agent under relay churn: VirtioRelays created, attached and
// deleted through the real apiserver, and every N rounds the agent's memory by kind: RSS, the JS
// heap right after a full GC (forced through the inspector), the C heap (glibc's mallinfo2 over
// all arenas) and RSS again after malloc_trim, and which memory mappings grew (from
// /proc/<pid>/smaps: V8's heap pages, malloc's thread arenas at 64 MiB boundaries, [heap]).
// This is how issue #20's RSS growth with a flat heap was found; figures: bench/RESULTS.md K.
//
//   timeout 900 flock /tmp/vio4wd-it.lock node --import tsx bench/churn-memory.ts [--rounds 200] [--every 25]
//
// Each round creates two relays (client and server mode, net_tap VF stand-ins), waits for both
// to be Ready, deletes them and waits until they are gone. The agent is the DaemonSet's
// (ZeroMQ control, metrics, device plugin to a test kubelet, CNI API) inside a netns.
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startKube } from '../test/helpers/kube.js';
import { Netns, testTempDir } from '../test/helpers/netns.js';
import { AgentProcess } from '../test/helpers/agent.js';
import { TestKubelet } from '../test/helpers/kubelet.js';
import { TEST_VIRTUAL_DEVICES, testPoolPolicy } from '../test/helpers/policy.js';
import { Cleanups, proxyApiserverInto, until } from '../test/helpers/e2e.js';
import { ADDON_PATH } from '../src/engine/native.js';
import { GROUP, VERSION, kubeClients } from '../src/kube/index.js';

const execFileP = promisify(execFile);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200' }, every: { type: 'string', default: '25' } } });
const ROUNDS = Number(values.rounds);
const EVERY = Number(values.every);
const NS = 'bench';
const NODE = 'bench-node';

/** Runs in the agent's netns: a full GC and the heap through the inspector, then an expression. */
const inspectorScript = `
const [expr] = process.argv.slice(1);
const list = await (await fetch('http://127.0.0.1:9229/json/list')).json();
const ws = new WebSocket(list[0].webSocketDebuggerUrl);
await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
const pending = new Map();
let id = 0;
ws.onmessage = (m) => { const d = JSON.parse(m.data); pending.get(d.id)?.(d.result); };
const call = (method, params = {}) => new Promise((r) => { pending.set(++id, r); ws.send(JSON.stringify({ id, method, params })); });
await call('HeapProfiler.enable');
await call('HeapProfiler.collectGarbage');
const heap = await call('Runtime.getHeapUsage');
const ev = await call('Runtime.evaluate', { expression: expr, returnByValue: true });
ws.close();
process.stdout.write(JSON.stringify({ heap, value: ev.result.value }));`;

function mappings(pid: number): Map<string, { rssKb: number; name: string }> {
  const out = new Map<string, { rssKb: number; name: string }>();
  let cur = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const h = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h) {
      cur = h[1]!;
      out.set(cur, { rssKb: 0, name: h[2] ?? '' });
      continue;
    }
    const r = /^Rss:\s+(\d+)/.exec(line);
    if (r) out.get(cur)!.rssKb = Number(r[1]);
  }
  return out;
}

const rssKb = (pid: number): number => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

const cleanups = new Cleanups();
try {
  const kube = await startKube();
  cleanups.add('kube', () => kube.stop());
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io');
  await kube.kubectl('create', 'namespace', NS);
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([NS])) });
  const api = kubeClients(kube.kubeconfigPath);
  await api.core.createNode({ body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } } });
  const tmp = testTempDir('churnmem');
  cleanups.add('temp dir', () => tmp.remove());
  const dirs = { sockets: join(tmp.path, 'sockets'), plugins: join(tmp.path, 'plugins'), devinfo: join(tmp.path, 'devinfo'), ipc: join(tmp.path, 'ipc') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const ns = await Netns.create('churnmem');
  cleanups.add('netns', () => ns.destroy());
  await proxyApiserverInto(ns, Number(new URL(kube.server).port), join(tmp.path, 'apiserver.sock'), cleanups);
  const kubelet = await TestKubelet.start(dirs.plugins);
  cleanups.add('kubelet', () => kubelet.stop());
  const agent = await AgentProcess.start({
    workDir: tmp.path,
    netns: ns,
    readyTimeoutMs: 120_000,
    env: { NODE_OPTIONS: '--inspect=127.0.0.1:9229' },
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, filePrefix: `vio4wd-cm-${process.pid}`, noPci: true },
      control: { ipcDir: dirs.ipc },
      metrics: { address: '127.0.0.1:9464' },
      sriov: { vfProgrammer: 'standin' },
      cni: { enabled: true, socket: join(tmp.path, 'run', 'agent.sock'), statePath: join(tmp.path, 'state', 'attachments.json') },
      kubernetes: { allowVirtualDevices: TEST_VIRTUAL_DEVICES },
    },
    args: ['--kubernetes', '--kubeconfig', kube.kubeconfigPath, '--node-name', NODE, '--socket-dir', dirs.sockets, '--device-plugin-dir', dirs.plugins, '--devinfo-dir', dirs.devinfo],
  });
  cleanups.add('agent', async () => {
    if (agent.exitCode === null) await agent.stop();
  });
  const inspect = async (expr: string): Promise<{ heap: { usedSize: number; totalSize: number }; value: string }> => {
    const { stdout } = await execFileP('ip', ['netns', 'exec', ns.name, process.execPath, '--input-type=module', '-e', inspectorScript, expr], { encoding: 'utf8' });
    return JSON.parse(stdout) as { heap: { usedSize: number; totalSize: number }; value: string };
  };
  // the agent's own addon (the same file is loaded once per process)
  const addon = `process.getBuiltinModule('module').createRequire('/')(${JSON.stringify(ADDON_PATH)})`;

  const relay = (name: string, spec: Record<string, unknown>) => ({ apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtioRelay', metadata: { name, namespace: NS }, spec: { nodeName: NODE, ...spec } });
  const get = (name: string) => api.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'virtiorelays', name }).catch(() => undefined) as Promise<{ status?: { phase?: string } } | undefined>;
  let prev = mappings(agent.pid);
  const rows: string[] = [];
  const sample = async (round: number): Promise<void> => {
    const rss = rssKb(agent.pid);
    const info = await inspect(`JSON.stringify(${addon}.nativeHeap())`);
    const c = JSON.parse(info.value) as { inUseBytes: number; freeBytes: number };
    await inspect(`JSON.stringify(${addon}.trimNativeHeap())`);
    const trimmed = rssKb(agent.pid);
    const now = mappings(agent.pid);
    const grew = [...now].map(([k, v]) => ({ k, v, d: v.rssKb - (prev.get(k)?.rssKb ?? 0) })).filter((x) => x.d >= 256).sort((a, b) => b.d - a.d);
    prev = now;
    const row =
      `${String(round).padStart(6)} ${String(rss).padStart(9)} ${String(trimmed).padStart(12)} ${String((info.heap.usedSize / 1024) | 0).padStart(12)} ` +
      `${String((c.inUseBytes / 1024) | 0).padStart(10)} ${String((c.freeBytes / 1024) | 0).padStart(9)}  ${grew.slice(0, 4).map((x) => `${x.k}${x.v.name ? ` ${x.v.name.split('/').pop()}` : ''} +${x.d}`).join('; ')}`;
    rows.push(row);
    process.stdout.write(row + '\n');
  };
  process.stdout.write(` round    RSS kB  RSS trimmed  heap GC kB  C heap kB   free kB  mappings grown since the last sample (kB)\n`);
  await sample(0);
  for (let i = 0; i < ROUNDS; i++) {
    const names = [`c${i}-a`, `c${i}-b`];
    await api.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'virtiorelays', body: relay(names[0]!, { vf: { devargs: `net_tap_ca${i},iface=ca${i}` } }) });
    await api.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'virtiorelays', body: relay(names[1]!, { vf: { devargs: `net_tap_cb${i},iface=cb${i}` }, vhostUser: { mode: 'server' } }) });
    for (const n of names) await until(`${n} Ready`, async () => (await get(n))?.status?.phase === 'Ready', 60_000, 50);
    for (const n of names) await api.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'virtiorelays', name: n });
    for (const n of names) await until(`${n} gone`, async () => (await get(n)) === undefined, 60_000, 50);
    if ((i + 1) % EVERY === 0) await sample(i + 1);
  }
} finally {
  await cleanups.run();
}
