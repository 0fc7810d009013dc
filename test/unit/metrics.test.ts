// The agent's Prometheus metrics as pure logic: values come from the relay list and the engine
// counters at scrape time, and a removed relay leaves no series behind (no label-cardinality
// leak on a node where relays come and go). The HTTP side is tested with the real agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentMetrics, type MetricsSources } from '../../src/metrics/index.js';
import type { RelayStatus } from '../../src/relay/types.js';
import type { RelayStats } from '../../src/engine/types.js';

function relay(name: string, id: number): RelayStatus {
  return {
    name, id, origin: 'config', phase: 'Ready', socketPath: `/run/x/${name}.sock`, mode: 'server', queues: 1, numaNode: 0,
    resourceName: 'vio4wd.io/vhostuser', healthy: true,
    conditions: [{ type: 'GuestConnected', status: 'True', reason: 'GuestConnected', message: '', lastTransitionTime: '' }],
  } as RelayStatus;
}

const dir = { rxPackets: 10, rxBytes: 640, txPackets: 9, txBytes: 576, droppedQueueFullPackets: 1, droppedNotConnectedPackets: 0 };

test('per-relay series follow the relay list; a removed relay takes its migration counts along', async () => {
  let relays = [relay('a', 1), relay('b', 2)];
  const src: MetricsSources = {
    relays: () => relays,
    stats: (id) =>
      relays.some((r) => r.id === id)
        ? ({ vfToVm: dir, vmToVf: dir, queues: [{ queue: 0, vfToVm: dir, vmToVf: dir }, { queue: 1, vfToVm: { ...dir, txPackets: 0 }, vmToVf: { ...dir, txPackets: 4 } }] } as unknown as RelayStats)
        : undefined,
    engineUp: () => true,
    ready: () => true,
  };
  const m = new AgentMetrics(src);
  m.countMigration('a', 'out');
  m.countMigration('b', 'in');
  let text = await m.registry.metrics();
  assert.match(text, /vio4wd_relay_tx_packets_total\{relay="a",id="1",direction="vf_to_vm"\} 9/);
  assert.match(text, /vio4wd_relay_migrations_total\{relay="a",direction="out"\} 1/);
  assert.match(text, /vio4wd_relay_migrations_total\{relay="b",direction="in"\} 1/);
  // per queue pair
  assert.match(text, /vio4wd_relay_queue_tx_packets_total\{relay="a",id="1",queue="1",direction="vm_to_vf"\} 4/);
  assert.match(text, /vio4wd_relay_queue_tx_packets_total\{relay="a",id="1",queue="1",direction="vf_to_vm"\} 0/);

  relays = [relay('b', 2)];
  m.forgetRelay('a');
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /relay="a"/, 'no series of the removed relay');
  assert.match(text, /vio4wd_relay_migrations_total\{relay="b",direction="in"\} 1/);
  assert.match(text, /vio4wd_relays\{phase="Ready"\} 1/);
});

test('VF driver counters per relay, worker load in seconds from TSC cycles, build info', async () => {
  const vf = { rxPackets: 100, txPackets: 90, rxBytes: 6400, txBytes: 5760, rxMissed: 7, rxErrors: 1, txErrors: 2, rxNoMbuf: 3 };
  const src: MetricsSources = {
    relays: () => [relay('a', 1), relay('b', 2)],
    // relay b has no VF attached: no VF series for it
    stats: (id) => ({ vfToVm: dir, vmToVf: dir, queues: [], ...(id === 1 ? { vf } : {}) }) as unknown as RelayStats,
    engineUp: () => true,
    ready: () => true,
    workers: () => [{ cpu: 3, lcore: 1, numaNode: 0, directions: 4, busyCycles: 2_000_000_000, idleCycles: 6_000_000_000, packets: 123, dropped: 4, entries: 8, hotEntries: 2, wakeups: 1 }],
    tscHz: () => 2_000_000_000,
    buildInfo: () => ({ version: '1.2.3', commit: 'abc', dpdk: '22.11.11', node: '20.1.0' }),
  };
  const text = await new AgentMetrics(src).registry.metrics();
  assert.match(text, /vio4wd_vf_rx_packets_total\{relay="a",id="1"\} 100/);
  assert.match(text, /vio4wd_vf_dropped_packets_total\{relay="a",id="1",direction="rx",reason="missed"\} 7/);
  assert.match(text, /vio4wd_vf_dropped_packets_total\{relay="a",id="1",direction="rx",reason="no_mbuf"\} 3/);
  assert.match(text, /vio4wd_vf_dropped_packets_total\{relay="a",id="1",direction="tx",reason="error"\} 2/);
  assert.doesNotMatch(text, /vio4wd_vf_[a-z_]+\{relay="b"/);
  assert.match(text, /vio4wd_worker_busy_seconds_total\{cpu="3"\} 1\n/);
  assert.match(text, /vio4wd_worker_idle_seconds_total\{cpu="3"\} 3\n/);
  assert.match(text, /vio4wd_worker_packets_total\{cpu="3"\} 123/);
  assert.match(text, /vio4wd_worker_dropped_packets_total\{cpu="3"\} 4/);
  assert.match(text, /vio4wd_worker_relay_directions\{cpu="3"\} 4/);
  assert.match(text, /vio4wd_worker_hot_entries\{cpu="3"\} 2/);
  assert.match(text, /vio4wd_worker_wakeups_total\{cpu="3"\} 1/);
  assert.match(text, /vio4wd_build_info\{version="1.2.3",commit="abc",dpdk_version="22.11.11",node_version="20.1.0"\} 1/);
});

test('node hugepages in bytes per NUMA node and page size', async () => {
  const m = new AgentMetrics({
    relays: () => [],
    stats: () => undefined,
    engineUp: () => true,
    ready: () => true,
    hugepages: async () => [
      { numaNode: 0, pageSizeKiB: 2048, total: 512, free: 100 },
      { numaNode: 1, pageSizeKiB: 1048576, total: 4, free: 0 },
    ],
  });
  const text = await m.registry.metrics();
  assert.match(text, /vio4wd_node_hugepages_capacity_bytes\{numa="0",page_size="2Mi"\} 1073741824/);
  assert.match(text, /vio4wd_node_hugepages_free_bytes\{numa="0",page_size="2Mi"\} 209715200/);
  assert.match(text, /vio4wd_node_hugepages_capacity_bytes\{numa="1",page_size="1Gi"\} 4294967296/);
  assert.match(text, /vio4wd_node_hugepages_free_bytes\{numa="1",page_size="1Gi"\} 0/);
});
