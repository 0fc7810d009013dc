// The relay-to-pod join against a real gRPC server speaking kubelet's pod-resources API v1 on a
// unix socket: List's reply (with fields vio4wd does not read) joins each relay to its pod in
// vio4wd_relay_pod_info; a kubelet that does not answer leaves the join empty and says so.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayPodJoin, listPodResources } from '../../src/agent/pod-resources.js';
import { AgentMetrics, type MetricsSources } from '../../src/metrics/index.js';
import type { RelayStatus } from '../../src/relay/types.js';
import { PodResourcesServer, type ListReply } from '../helpers/pod-resources.js';

let dir: string;
let socket: string;
let server: PodResourcesServer;

const REPLY: ListReply = {
  pod_resources: [
    {
      name: 'vm-a',
      namespace: 'tenant-1',
      containers: [
        {
          name: 'compute',
          cpu_ids: [2, 3],
          memory: [{ memory_type: 'hugepages-2Mi', size: 1 << 30, topology: { nodes: [{ ID: 0 }] } }],
          devices: [
            { resource_name: 'vio4wd.io/vhostuser', device_ids: ['relay-a'], topology: { nodes: [{ ID: 0 }] } },
            { resource_name: 'intel.com/sriov', device_ids: ['0000:05:02.1'] },
          ],
        },
      ],
    },
    // the same device ID under another resource is not ours
    { name: 'other', namespace: 'x', containers: [{ name: 'c', devices: [{ resource_name: 'example.com/other', device_ids: ['relay-b'] }] }] },
  ],
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vio4wd-podres-'));
  socket = join(dir, 'kubelet.sock');
  server = await PodResourcesServer.start(socket, () => REPLY);
});

after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

function relay(name: string, id: number, resourceName = 'vio4wd.io/vhostuser'): RelayStatus {
  return { name, id, origin: 'kubernetes', phase: 'Ready', socketPath: `/run/${name}.sock`, mode: 'server', queues: 1, numaNode: 0, resourceName, healthy: true, conditions: [] } as unknown as RelayStatus;
}

test('List over the kubelet socket: every device of every container, with its pod', async () => {
  const all = await listPodResources(socket);
  assert.deepEqual(all, [
    { resourceName: 'vio4wd.io/vhostuser', deviceId: 'relay-a', namespace: 'tenant-1', pod: 'vm-a', container: 'compute' },
    { resourceName: 'intel.com/sriov', deviceId: '0000:05:02.1', namespace: 'tenant-1', pod: 'vm-a', container: 'compute' },
    { resourceName: 'example.com/other', deviceId: 'relay-b', namespace: 'x', pod: 'other', container: 'c' },
  ]);
});

test('vio4wd_relay_pod_info joins a relay to the pod that holds its device; one List per scrape window', async () => {
  const join = new RelayPodJoin(socket, 60_000);
  const src: MetricsSources = {
    relays: () => [relay('relay-a', 1), relay('relay-b', 2)],
    stats: () => undefined,
    engineUp: () => true,
    ready: () => true,
    relayPods: async () => ({ ok: !join.lastError, pods: await join.pods() }),
  };
  const m = new AgentMetrics(src);
  const before = server.calls;
  const text = await m.registry.metrics();
  assert.match(text, /^vio4wd_relay_pod_info\{relay="relay-a",id="1",pod_namespace="tenant-1",pod_name="vm-a",pod_container="compute"\} 1$/m);
  assert.doesNotMatch(text, /vio4wd_relay_pod_info\{relay="relay-b"/, 'relay-b has no pod: its device ID is in use under another resource');
  assert.match(text, /^vio4wd_pod_resources_up 1$/m);
  await m.registry.metrics();
  assert.equal(server.calls - before, 1, 'two gauges and two scrapes within maxAge: one List');
});

test('no kubelet on the socket: the join is empty, pod_resources_up is 0 and the error names the socket', async () => {
  const missing = join(dir, 'nobody.sock');
  const j = new RelayPodJoin(missing);
  const m = new AgentMetrics({
    relays: () => [relay('relay-a', 1)],
    stats: () => undefined,
    engineUp: () => true,
    ready: () => true,
    relayPods: async () => {
      const pods = await j.pods();
      return { ok: !j.lastError, pods };
    },
  });
  const text = await m.registry.metrics();
  assert.match(text, /^vio4wd_pod_resources_up 0$/m);
  assert.doesNotMatch(text, /^vio4wd_relay_pod_info\{/m);
  assert.match(j.lastError ?? '', new RegExp(`pod-resources List on ${missing} failed`));
});
