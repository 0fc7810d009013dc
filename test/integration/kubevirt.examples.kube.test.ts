// examples/kubevirt against a real kube-apiserver that serves KubeVirt 1.7.0's own CRDs
// (generated from its Go module by test/env), the NetworkAttachmentDefinition CRD and vio4wd's: the server
// accepts every example with strict field validation, and keeps the fields the binding relies on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { installExampleCrds, startKube, type KubeEnv } from '../helpers/kube.js';

let kube: KubeEnv;

before(async () => {
  kube = await startKube();
  await installExampleCrds(kube);
  await kube.kubectl('create', 'namespace', 'kubevirt');
});

after(async () => {
  await kube?.stop();
});

test('the apiserver accepts every example (server-side dry run, strict fields)', async () => {
  const out = await kube.kubectl('apply', '--dry-run=server', '--validate=strict', '-f', 'examples/kubevirt/');
  for (const obj of [
    'kubevirt.kubevirt.io/kubevirt',
    'virtioforwarderpolicy.vio4wd.io/pool-a',
    'virtioforwarderpolicy.vio4wd.io/pool-b',
    'virtiorelay.vio4wd.io/pool-a-0',
    'virtiorelay.vio4wd.io/pool-b-1',
    'networkattachmentdefinition.k8s.cni.cncf.io/vio4wd-pool-a',
    'networkattachmentdefinition.k8s.cni.cncf.io/vio4wd-pool-b',
    'virtualmachine.kubevirt.io/vm-vio4wd-one',
    'virtualmachine.kubevirt.io/vm-vio4wd-two',
  ]) {
    assert.match(out, new RegExp(`${obj.replaceAll('.', '\\.')} created \\(server dry run\\)`), out);
  }
});

test('the KubeVirt CRD keeps the binding registration and the VM keeps its binding and multiqueue', async () => {
  const kv = JSON.parse(await kube.kubectl('apply', '--dry-run=server', '-o', 'json', '-f', 'examples/kubevirt/00-kubevirt-binding.yaml')) as {
    spec: { configuration: { network: { binding: Record<string, { sidecarImage?: string; downwardAPI?: string; domainAttachmentType?: string; migration?: { method?: string } }> } } };
  };
  const b = kv.spec.configuration.network.binding.vio4wd!;
  assert.equal(b.downwardAPI, 'device-info');
  assert.deepEqual(b.migration, {}, 'declared live-migratable (KubeVirt refuses to migrate a binding without it), no link-refresh');
  assert.match(b.sidecarImage ?? '', /vio4wd/);
  assert.equal(b.domainAttachmentType, undefined);

  const vm = JSON.parse(await kube.kubectl('apply', '--dry-run=server', '-o', 'json', '-f', 'examples/kubevirt/30-vm-two-nics.yaml')) as {
    spec: {
      template: {
        metadata: { annotations: Record<string, string> };
        spec: { domain: { devices: { networkInterfaceMultiqueue?: boolean; interfaces: { name: string; binding?: { name: string }; pciAddress?: string; acpiIndex?: number }[] }; memory: { hugepages?: { pageSize: string } } } };
      };
    };
  };
  const devices = vm.spec.template.spec.domain.devices;
  assert.equal(devices.networkInterfaceMultiqueue, true);
  assert.deepEqual(devices.interfaces.filter((i) => i.binding?.name === 'vio4wd').map((i) => i.name), ['net1', 'net2']);
  assert.equal(devices.interfaces[1]!.pciAddress, '0000:08:00.0');
  assert.equal(devices.interfaces[1]!.acpiIndex, 3);
  assert.equal(vm.spec.template.spec.domain.memory.hugepages?.pageSize, '2Mi');
  assert.deepEqual(Object.keys(JSON.parse(vm.spec.template.metadata.annotations['vio4wd.io/interfaces']!) as object), ['net1', 'net2']);
});

test('the NetworkAttachmentDefinitions run vio4wd-cni with the pool\'s resource and the mac capability; the VMs name no MAC by hand', async () => {
  const list = JSON.parse(await kube.kubectl('apply', '--dry-run=server', '-o', 'json', '-f', 'examples/kubevirt/10-network-attachment-definitions.yaml')) as {
    items: { metadata: { name: string; annotations: Record<string, string> }; spec: { config: string } }[];
  };
  for (const nad of list.items) {
    const pool = nad.metadata.name.replace('vio4wd-', '');
    assert.equal(nad.metadata.annotations['k8s.v1.cni.cncf.io/resourceName'], `vio4wd.io/${pool}`);
    const conf = JSON.parse(nad.spec.config) as { type: string; cniVersion: string; name: string; capabilities: Record<string, boolean> };
    assert.deepEqual([conf.type, conf.cniVersion, conf.name, conf.capabilities.mac], ['vio4wd', '1.0.0', nad.metadata.name, true]);
  }
  const one = readFileSync('examples/kubevirt/20-vm-one-nic.yaml', 'utf8');
  assert.doesNotMatch(one, /macAddress:/, 'the one-NIC VM leaves the MAC to KubeVirt/kubemacpool and vio4wd-cni');
});

test('the same apiserver refuses a VM with a misspelt binding field (the check can fail)', async () => {
  const bad = readFileSync('examples/kubevirt/20-vm-one-nic.yaml', 'utf8').replace('              binding:\n', '              bindng:\n');
  assert.notEqual(bad, readFileSync('examples/kubevirt/20-vm-one-nic.yaml', 'utf8'));
  const r = await kube.kubectlRun(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], { input: bad, check: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown field.*bindng/);
});
