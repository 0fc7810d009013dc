// The v1beta1 .proto vio4wd speaks must be the kubelet's on the wire, and the TypeScript types
// generated from it must be current.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_PATH } from '../../src/deviceplugin/proto.js';

// Transcribed from k8s.io/kubelet pkg/apis/deviceplugin/v1beta1/api.proto (tag, name, type, repeated).
const KUBELET: Record<string, [number, string, string, boolean?][]> = {
  DevicePluginOptions: [[1, 'pre_start_required', 'bool'], [2, 'get_preferred_allocation_available', 'bool']],
  RegisterRequest: [[1, 'version', 'string'], [2, 'endpoint', 'string'], [3, 'resource_name', 'string'], [4, 'options', 'DevicePluginOptions']],
  Empty: [],
  ListAndWatchResponse: [[1, 'devices', 'Device', true]],
  TopologyInfo: [[1, 'nodes', 'NUMANode', true]],
  NUMANode: [[1, 'ID', 'int64']],
  Device: [[1, 'ID', 'string'], [2, 'health', 'string'], [3, 'topology', 'TopologyInfo']],
  PreStartContainerRequest: [[1, 'devices_ids', 'string', true]],
  PreStartContainerResponse: [],
  PreferredAllocationRequest: [[1, 'container_requests', 'ContainerPreferredAllocationRequest', true]],
  ContainerPreferredAllocationRequest: [[1, 'available_deviceIDs', 'string', true], [2, 'must_include_deviceIDs', 'string', true], [3, 'allocation_size', 'int32']],
  PreferredAllocationResponse: [[1, 'container_responses', 'ContainerPreferredAllocationResponse', true]],
  ContainerPreferredAllocationResponse: [[1, 'deviceIDs', 'string', true]],
  AllocateRequest: [[1, 'container_requests', 'ContainerAllocateRequest', true]],
  ContainerAllocateRequest: [[1, 'devices_ids', 'string', true]],
  CDIDevice: [[1, 'name', 'string']],
  AllocateResponse: [[1, 'container_responses', 'ContainerAllocateResponse', true]],
  ContainerAllocateResponse: [[1, 'envs', 'map<string,string>'], [2, 'mounts', 'Mount', true], [3, 'devices', 'DeviceSpec', true], [4, 'annotations', 'map<string,string>'], [5, 'cdi_devices', 'CDIDevice', true]],
  Mount: [[1, 'container_path', 'string'], [2, 'host_path', 'string'], [3, 'read_only', 'bool']],
  DeviceSpec: [[1, 'container_path', 'string'], [2, 'host_path', 'string'], [3, 'permissions', 'string']],
};
const SERVICES: Record<string, [string, string, string, boolean][]> = {
  Registration: [['Register', 'RegisterRequest', 'Empty', false]],
  DevicePlugin: [
    ['GetDevicePluginOptions', 'Empty', 'DevicePluginOptions', false],
    ['ListAndWatch', 'Empty', 'ListAndWatchResponse', true],
    ['GetPreferredAllocation', 'PreferredAllocationRequest', 'PreferredAllocationResponse', false],
    ['Allocate', 'AllocateRequest', 'AllocateResponse', false],
    ['PreStartContainer', 'PreStartContainerRequest', 'PreStartContainerResponse', false],
  ],
};

test('the .proto matches kubelet v1beta1 message by message, field by field', () => {
  const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
  const pkg = root.lookup('v1beta1') as protobuf.Namespace;
  const messages = pkg.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type);
  assert.deepEqual(messages.map((m) => m.name).sort(), Object.keys(KUBELET).sort());
  for (const m of messages) {
    const fields = m.fieldsArray.map((f) => {
      const type = f instanceof protobuf.MapField ? `map<${f.keyType},${f.type}>` : f.type;
      return f.repeated ? [f.id, f.name, type, true] : [f.id, f.name, type];
    });
    assert.deepEqual(fields, KUBELET[m.name], `message ${m.name}`);
  }
  for (const [name, methods] of Object.entries(SERVICES)) {
    const svc = pkg.lookupService(name);
    assert.deepEqual(
      svc.methodsArray.map((x) => [x.name, x.requestType, x.responseType, Boolean(x.responseStream) && !x.requestStream]),
      methods,
      `service ${name}`,
    );
  }
});

test('the generated TypeScript types are current (src/deviceplugin/gen/generate.sh)', () => {
  const out = mkdtempSync(join(tmpdir(), 'vio4wd-gen-'));
  try {
    execFileSync('src/deviceplugin/gen/generate.sh', [out], { stdio: 'pipe' });
    const list = (dir: string): string[] =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && e.name.endsWith('.ts'))
        .map((e) => relative(dir, join(e.parentPath, e.name)))
        .sort();
    const committed = 'src/deviceplugin/gen';
    assert.deepEqual(list(out), list(committed));
    for (const f of list(out)) {
      assert.equal(readFileSync(join(committed, f), 'utf8'), readFileSync(join(out, f), 'utf8'), `${f} is stale: run src/deviceplugin/gen/generate.sh`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
