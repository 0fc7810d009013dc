// The CRDs on a real kube-apiserver: they install, examples apply, every CEL rule rejects what
// it should with a readable message, and kubectl shows the printer columns.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startKube, type KubeEnv } from '../helpers/kube.js';
import { crdFiles } from '../../scripts/gen-crds.js';

let kube: KubeEnv;

before(async () => {
  kube = await startKube();
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io');
  await kube.kubectl('create', 'namespace', 't');
});

after(async () => {
  await kube?.stop();
});

function relay(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name, namespace: 't' }, spec });
}

async function rejected(obj: string): Promise<string> {
  const r = await kube.kubectlRun(['apply', '-f', '-'], { input: obj, check: false });
  assert.notEqual(r.code, 0, `expected the apiserver to reject ${obj}`);
  return r.stderr;
}

test('crds/ are what src/kube/crd-schemas.ts generates (npm run gen:crds)', () => {
  for (const [file, text] of crdFiles()) {
    assert.equal(readFileSync(`crds/${file}`, 'utf8'), text, `crds/${file} is stale: run npm run gen:crds`);
    assert.equal(readFileSync(`helm/vio4wd/crds/${file}`, 'utf8'), text, `helm/vio4wd/crds/${file} is stale: run npm run gen:crds`);
  }
});

test('valid relays are accepted: PCI address, selector, bond, devargs', async () => {
  await kube.kubectlRun(['apply', '-f', '-'], {
    input: [
      relay('by-pci', { nodeName: 'n1', vf: { pciAddress: '0000:05:08.1' }, queues: 4, mac: '52:54:00:12:34:56' }),
      relay('by-selector', { vf: { selector: { pfName: 'ens1f0', vfIndexRange: '0-7' } } }),
      relay('bond', { vf: { pciAddresses: ['0000:05:08.1', '0000:05:08.2'], bondMode: 1 } }),
      relay('tap', { vf: { devargs: 'net_tap0,iface=vf0' }, vhostUser: { mode: 'server' } }),
    ].join('\n'),
  });
  const names = (await kube.kubectl('get', 'vr', '-n', 't', '-o', 'name')).trim().split('\n').sort();
  assert.deepEqual(names, ['virtiorelay.vio4wd.io/bond', 'virtiorelay.vio4wd.io/by-pci', 'virtiorelay.vio4wd.io/by-selector', 'virtiorelay.vio4wd.io/tap']);
});

test('exactly one VF source', async () => {
  assert.match(await rejected(relay('two', { vf: { pciAddress: '0000:05:08.1', devargs: 'net_tap0' } })), /set exactly one of vf.pciAddress, vf.pciAddresses, vf.selector or vf.devargs/);
  assert.match(await rejected(relay('none', { vf: {} })), /set exactly one of vf.pciAddress/);
  assert.match(await rejected(relay('nobond', { vf: { pciAddress: '0000:05:08.1', bondMode: 2 } })), /vf.bondMode needs vf.pciAddresses/);
});

test('queues 1..32 and a well-formed MAC', async () => {
  assert.match(await rejected(relay('q', { vf: { devargs: 'x' }, queues: 33 })), /queues must be between 1 and 32/);
  assert.match(await rejected(relay('q0', { vf: { devargs: 'x' }, queues: 0 })), /queues must be between 1 and 32/);
  assert.match(await rejected(relay('mac', { vf: { devargs: 'x' }, mac: '52:54:00:12:34' })), /mac must look like 52:54:00:12:34:56/);
});

test('schema errors name the field', async () => {
  assert.match(await rejected(relay('pci', { vf: { pciAddress: '05:08.1' } })), /spec.vf.pciAddress: Invalid value: "05:08.1": spec.vf.pciAddress in body should match/);
  assert.match(await rejected(relay('mode', { vf: { devargs: 'x' }, vhostUser: { mode: 'bridge' } })), /spec.vhostUser.mode: Unsupported value: "bridge": supported values: "client", "server"/);
  assert.match(await rejected(relay('novf', {})), /spec.vf: Required value/);
});

test('vf, mode, resourceName and nodeName cannot change after creation', async () => {
  await kube.kubectlRun(['apply', '-f', '-'], { input: relay('fixed', { nodeName: 'n1', vf: { pciAddress: '0000:05:08.3' }, resourceName: 'vio4wd.io/a' }) });
  assert.match(await rejected(relay('fixed', { nodeName: 'n1', vf: { pciAddress: '0000:05:08.4' }, resourceName: 'vio4wd.io/a' })), /vf cannot be changed after creation/);
  assert.match(await rejected(relay('fixed', { nodeName: 'n1', vf: { pciAddress: '0000:05:08.3' }, resourceName: 'vio4wd.io/a', vhostUser: { mode: 'server' } })), /vhostUser.mode cannot be changed after creation/);
  assert.match(await rejected(relay('fixed', { nodeName: 'n1', vf: { pciAddress: '0000:05:08.3' }, resourceName: 'vio4wd.io/b' })), /resourceName cannot be changed after creation/);
  assert.match(await rejected(relay('fixed', { nodeName: 'n2', vf: { pciAddress: '0000:05:08.3' }, resourceName: 'vio4wd.io/a' })), /nodeName cannot be changed once set/);
  // queues may change
  await kube.kubectlRun(['apply', '-f', '-'], { input: relay('fixed', { nodeName: 'n1', vf: { pciAddress: '0000:05:08.3' }, resourceName: 'vio4wd.io/a', queues: 2 }) });
  // OnNodeLoss lets the operator move it
  await kube.kubectlRun(['apply', '-f', '-'], { input: relay('fixed', { nodeName: 'n2', vf: { pciAddress: '0000:05:08.3' }, resourceName: 'vio4wd.io/a', queues: 2, reschedule: 'OnNodeLoss' }) });
});

test('kubectl get shows node, VF, socket, phase and age; short names and field selector work', async () => {
  const out = await kube.kubectl('get', 'vr', '-n', 't');
  assert.match(out.split('\n')[0]!, /^NAME\s+NODE\s+VF\s+SOCKET\s+PHASE\s+AGE$/);
  const wide = await kube.kubectl('get', 'vrelay', '-n', 't', '-o', 'wide');
  assert.match(wide.split('\n')[0]!, /GUEST\s+REASON/);
  const onN1 = await kube.kubectl('get', 'virtiorelays', '-A', '--field-selector', 'spec.nodeName=n1', '-o', 'name');
  assert.deepEqual(onN1.trim().split('\n'), ['virtiorelay.vio4wd.io/by-pci']);
  const vfn = await kube.kubectlRun(['get', 'vfn']);
  assert.match(vfn.stderr, /No resources found/);
});

test('tenant strings are bounded: the apiserver refuses longer ones, naming the field', async () => {
  // what an agent copies into messages, logs and events stays short
  assert.match(await rejected(relay('pf', { vf: { selector: { pfName: 'a'.repeat(16) } } })), /spec.vf.selector.pfName: Too long: may not be (longer than|more than) 15/);
  assert.match(await rejected(relay('range', { vf: { selector: { vfIndexRange: `0-${'9'.repeat(20)}` } } })), /spec.vf.selector.vfIndexRange: Too long/);
  assert.match(await rejected(relay('longmac', { vf: { devargs: 'x' }, mac: `52:54:00:12:34:56${':00'.repeat(1000)}` })), /spec.mac: Too long/);
  assert.match(await rejected(relay('pool', { vf: { devargs: 'x' }, resourceName: `vio4wd.io/${'p'.repeat(64)}` })), /spec.resourceName: Too long/);
  assert.match(await rejected(relay('devargs', { vf: { devargs: `net_tap0,iface=${'x'.repeat(600)}` } })), /spec.vf.devargs: Too long/);
  await kube.kubectlRun(['apply', '-f', '-'], { input: relay('bounded', { vf: { selector: { pfName: 'a'.repeat(15), vfIndexRange: '4095-4095' } }, resourceName: `vio4wd.io/${'p'.repeat(63)}` }) });
});
