// The examples a cluster admin applies fit together: every VirtioRelay of examples/ is allowed by
// the VirtioForwarderPolicies of examples/ (the agent's own policy decision, src/policy), the VF
// it names or selects is one its pool may draw on (vfInPool), and every pool a KubeVirt
// NetworkAttachmentDefinition or a Pod asks for has a policy and relays enough for the NICs that
// use it plus one for a live migration's target. An example set that would leave a VM's pod
// Pending, or a relay PolicyDenied, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { decide, DEFAULT_POOL } from '../../src/policy/index.js';
import { vfInPool } from '../../src/util/vf-pool.js';
import type { VirtioForwarderPolicy, VirtioRelaySpec } from '../../src/kube/index.js';
import { explicitFromVmi, INTERFACES_ANNOTATION } from '../../src/kubevirt/explicit.js';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string> }; spec: Record<string, unknown>; items?: Obj[] };

function objects(dir: string): Obj[] {
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return objects(p);
    if (!/\.ya?ml$/.test(n) || p === 'examples/standalone.yaml') return [];
    return parseAllDocuments(readFileSync(p, 'utf8')).map((d) => d.toJS() as Obj).flatMap((o) => (o.kind === 'List' ? o.items ?? [] : [o]));
  });
}

const all = objects('examples');
const policies = all.filter((o) => o.kind === 'VirtioForwarderPolicy') as unknown as VirtioForwarderPolicy[];
const relays = all.filter((o) => o.kind === 'VirtioRelay');
/** Labels of a node every example policy selects (the SR-IOV nodes' label). */
const NODE_LABELS = { 'vio4wd.io/sriov': 'true' };

test('the examples hold policies and relays', () => {
  assert.ok(policies.length >= 4 && relays.length >= 10, `${policies.length} policies, ${relays.length} relays`);
});

test('every example VirtioRelay is allowed by the example policies, with a VF of its pool', () => {
  const wrong: string[] = [];
  for (const r of relays) {
    const spec = r.spec as unknown as VirtioRelaySpec;
    const d = decide({ namespace: r.metadata.namespace ?? 'default', spec }, policies, NODE_LABELS, { virtualDevices: [] });
    if (!d.allowed) {
      wrong.push(`${r.metadata.name}: ${d.message}`);
      continue;
    }
    const sel = spec.vf.selector;
    const vfs = spec.vf.pciAddress ? [{ pciAddress: spec.vf.pciAddress }] : sel ? [{ pciAddress: '0000:00:00.0', ...(sel.pfName ? { pfName: sel.pfName } : {}), ...(sel.vendor ? { vendor: sel.vendor, device: sel.device } : {}) }] : [];
    for (const vf of vfs) if (!vfInPool(vf, d.pool)) wrong.push(`${r.metadata.name}: its VF ${JSON.stringify(vf)} is not one pool ${d.pool.name} may draw on`);
  }
  assert.deepEqual(wrong, []);
});

test('every pool the KubeVirt VMs and example pods ask for has relays for their NICs and a migration target', () => {
  const nads = all.filter((o) => o.kind === 'NetworkAttachmentDefinition');
  const poolOfNad = new Map(nads.map((n) => [n.metadata.name, n.metadata.annotations?.['k8s.v1.cni.cncf.io/resourceName'] ?? '']));
  const need = new Map<string, number>();
  for (const vm of all.filter((o) => o.kind === 'VirtualMachine')) {
    const nets = ((vm.spec.template as { spec: { networks: { multus?: { networkName: string } }[] } }).spec.networks ?? []).flatMap((n) => (n.multus ? [n.multus.networkName] : []));
    for (const net of nets) {
      const pool = poolOfNad.get(net);
      assert.ok(pool, `${vm.metadata.name}: network ${net} has a NetworkAttachmentDefinition with a resourceName`);
      need.set(pool, (need.get(pool) ?? 0) + 1);
    }
  }
  for (const pod of all.filter((o) => o.kind === 'Pod')) {
    for (const c of (pod.spec.containers as { resources?: { limits?: Record<string, unknown> } }[]) ?? []) {
      for (const [res, n] of Object.entries(c.resources?.limits ?? {})) if (res.startsWith('vio4wd.io/')) need.set(res, (need.get(res) ?? 0) + Number(n));
    }
  }
  assert.ok(need.size >= 3, [...need.keys()].join(' '));
  for (const [pool, n] of need) {
    assert.ok(policies.some((p) => p.spec.resourceName === pool), `a VirtioForwarderPolicy defines ${pool}`);
    const have = relays.filter((r) => ((r.spec.resourceName as string | undefined) ?? DEFAULT_POOL) === pool).length;
    assert.ok(have >= n + 1, `${pool}: ${have} relays for ${n} NIC(s) and a migration target`);
  }
});

test('the VMs\' vio4wd.io/interfaces annotations are what the sidecar reads, for their vio4wd NICs, within their relays', () => {
  const vms = all.filter((o) => o.kind === 'VirtualMachine' && (o.spec.template as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations?.[INTERFACES_ANNOTATION]);
  assert.ok(vms.length >= 1);
  for (const vm of vms) {
    const tpl = vm.spec.template as {
      metadata: { annotations: Record<string, string> };
      spec: { domain: { devices: { interfaces: { name: string; binding?: { name: string } }[] } }; networks: { name: string; multus?: { networkName: string } }[] };
    };
    const byName = explicitFromVmi({ metadata: { annotations: tpl.metadata.annotations } } as Parameters<typeof explicitFromVmi>[0]);
    const nics = tpl.spec.domain.devices.interfaces.filter((i) => i.binding?.name === 'vio4wd').map((i) => i.name);
    const nads = all.filter((o) => o.kind === 'NetworkAttachmentDefinition');
    for (const [name, e] of byName) {
      assert.ok(nics.includes(name), `${vm.metadata.name}: ${name} is a vio4wd NIC`);
      // the relays of the NIC's pool serve the queues and carry the MTU the annotation gives the NIC
      const net = tpl.spec.networks.find((n) => n.name === name)?.multus?.networkName;
      const pool = nads.find((n) => n.metadata.name === net)?.metadata.annotations?.['k8s.v1.cni.cncf.io/resourceName'];
      const mine = relays.filter((r) => r.spec.resourceName === pool);
      assert.ok(mine.length > 0, `${vm.metadata.name}: ${name}'s pool ${pool} has relays`);
      for (const r of mine) {
        if (e.queues !== undefined) assert.ok(((r.spec.queues as number | undefined) ?? 1) >= e.queues, `${r.metadata.name} serves the ${e.queues} queue pairs ${name} asks for`);
        if (e.mtu !== undefined) assert.equal(r.spec.mtu, e.mtu, `${r.metadata.name} carries ${name}'s MTU ${e.mtu}`);
      }
    }
  }
});
