// The test control plane itself (test/env/kube-env via test/helpers/kube.ts): a real
// kube-apiserver v1.34.3 on a real etcd, with kubectl and helm, as later operator, packaging and
// KubeVirt tests use it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:https';
import { KubeStartError, startKube, waitUntil, type KubeEnv } from '../helpers/kube.js';

/** GET on the apiserver as admin; for a watch, calls onLine for each JSON line until it returns true */
function apiGet(kube: KubeEnv, path: string, onLine?: (obj: { type?: string; object?: unknown }) => boolean): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, kube.server);
    const req = request(url, { ca: readFileSync(kube.caFile), headers: { authorization: `Bearer ${kube.token}` }, timeout: 30_000 }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        if (!onLine) return;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const obj = JSON.parse(line) as { type?: string; object?: unknown };
          if (onLine(obj)) {
            req.destroy();
            resolve(obj);
            return;
          }
        }
      });
      res.on('end', () => (onLine ? reject(new Error(`watch ${path} ended`)) : resolve(JSON.parse(buf))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** alive = has a /proc entry and is not a zombie waiting to be reaped */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const widgetCrd = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.vio4wd.io
spec:
  group: testenv.vio4wd.io
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [min, max]
            properties:
              min: { type: integer }
              max: { type: integer }
            x-kubernetes-validations:
            - rule: self.min <= self.max
              message: spec.min must not be greater than spec.max
`;

const widget = (name: string, min: number, max: number): string => `
apiVersion: testenv.vio4wd.io/v1
kind: Widget
metadata: { name: ${name}, namespace: default }
spec: { min: ${min}, max: ${max} }
`;

describe('test control plane: kube-apiserver and etcd on loopback', () => {
  let kube: KubeEnv;
  const pids: number[] = [];

  before(async () => {
    kube = await startKube({ users: [{ name: 'viewer', groups: ['viewers'] }] });
  });
  after(async () => {
    await kube?.stop();
  });

  test('kubectl version reports the server as v1.34.3', async () => {
    const v = JSON.parse(await kube.kubectl('version', '-o', 'json')) as {
      serverVersion: { gitVersion: string; major: string; minor: string };
    };
    assert.equal(v.serverVersion.gitVersion, 'v1.34.3');
    assert.equal(v.serverVersion.major, '1');
    assert.equal(v.serverVersion.minor, '34');
    assert.equal(kube.version, 'v1.34.3');
  });

  test('a CRD with a CEL rule: the apiserver accepts a valid object and rejects an invalid one with the rule message', async () => {
    await kube.kubectlRun(['apply', '-f', '-'], { input: widgetCrd });
    await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/widgets.testenv.vio4wd.io');
    await kube.kubectlRun(['create', '-f', '-'], { input: widget('good', 1, 2) });
    const bad = await kube.kubectlRun(['create', '-f', '-'], { input: widget('bad', 5, 2), check: false });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.min must not be greater than spec\.max/);
    assert.match(bad.stderr, /is invalid/);
    const names = await kube.kubectl('get', 'widgets', '-n', 'default', '-o', 'jsonpath={.items[*].metadata.name}');
    assert.equal(names, 'good');
  });

  test('token users are authenticated and RBAC decides what they may do', async () => {
    const viewer = kube.users.viewer;
    assert.ok(viewer, 'the viewer user given at start has a kubeconfig');
    const who = await kube.kubectlRun(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.groups}'], {
      kubeconfig: viewer.kubeconfigPath,
    });
    assert.match(who.stdout, /^viewer .*viewers/);
    const denied = await kube.kubectlRun(['get', 'configmaps', '-n', 'default'], { kubeconfig: viewer.kubeconfigPath, check: false });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden: User "viewer" cannot list resource "configmaps"/);
    // (not the built-in "view": aggregated ClusterRoles stay empty without a controller-manager)
    await kube.kubectl('create', 'role', 'cm-reader', '-n', 'default', '--verb=get,list,watch', '--resource=configmaps');
    await kube.kubectl('create', 'rolebinding', 'viewers-cm-reader', '-n', 'default', '--role=cm-reader', '--group=viewers');
    // the authorizer sees a new binding once its informer has it
    await waitUntil('the viewer may list configmaps', async () => {
      const r = await kube.kubectlRun(['auth', 'can-i', 'list', 'configmaps', '-n', 'default'], { kubeconfig: viewer.kubeconfigPath, check: false });
      return r.stdout.trim() === 'yes';
    });
    await kube.kubectlRun(['get', 'configmaps', '-n', 'default'], { kubeconfig: viewer.kubeconfigPath });
    assert.equal(
      (await kube.kubectlRun(['auth', 'can-i', 'delete', 'configmaps', '-n', 'default'], { kubeconfig: viewer.kubeconfigPath, check: false })).stdout.trim(),
      'no',
    );

    // a ServiceAccount's identity through the TokenRequest API
    await kube.kubectl('create', 'serviceaccount', 'robot', '-n', 'default');
    const token = await kube.serviceAccountToken('default', 'robot');
    const kc = kube.kubeconfigForToken('robot', token);
    const sa = await kube.kubectlRun(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig: kc });
    assert.equal(sa.stdout, 'system:serviceaccount:default:robot');
  });

  test('helm talks to the apiserver: version, install and list a chart', async () => {
    assert.match(await kube.helm('version', '--short'), /^v\d+\.\d+\.\d+/);
    const chart = join(kube.dir, 'chart-hello');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: hello\nversion: 0.1.0\n');
    writeFileSync(join(chart, 'values.yaml'), 'greeting: hi\n');
    writeFileSync(
      join(chart, 'templates', 'cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hello\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
    );
    await kube.helm('install', 'demo', chart, '-n', 'default', '--set', 'greeting=hello from helm', '--wait', '--timeout', '60s');
    assert.equal(await kube.kubectl('get', 'cm', 'demo-hello', '-n', 'default', '-o', 'jsonpath={.data.greeting}'), 'hello from helm');
    assert.match(await kube.helm('list', '-n', 'default', '-q'), /^demo$/m);
  });

  test('watches on a quiet resource (with and without a resourceVersion) stay open and deliver the next change', async () => {
    // what informers and plain watches do; with an etcd older than the apiserver supports
    // (Debian's 3.4) a watch without resourceVersion ends after 3 quiet seconds with
    // "Too large resource version" instead
    // a fresh namespace: a watch without resourceVersion first replays what exists as ADDED
    await kube.kubectl('create', 'namespace', 'quiet');
    const list = (await apiGet(kube, '/api/v1/namespaces/quiet/secrets')) as { metadata: { resourceVersion: string } };
    const base = '/api/v1/namespaces/quiet/secrets?watch=1';
    const watches = [base, `${base}&resourceVersion=${list.metadata.resourceVersion}`].map((path) => {
      const types: string[] = [];
      const done = apiGet(kube, path, (ev) => {
        types.push(ev.type ?? '?');
        return ev.type === 'ERROR' || (ev.type === 'ADDED' && (ev.object as { metadata: { name: string } }).metadata.name === 'watched');
      });
      return { path, types, done, ended: false };
    });
    for (const w of watches) w.done.then(() => (w.ended = true), () => (w.ended = true));
    // nothing happens to secrets for 4 s: no watch may end meanwhile
    await new Promise((r) => setTimeout(r, 4000));
    for (const w of watches) {
      assert.equal(w.ended, false, `${w.path} ended while quiet: ${w.types.join(',')}`);
      assert.deepEqual(w.types, []);
    }
    await kube.kubectl('create', 'secret', 'generic', 'watched', '-n', 'quiet', '--from-literal=k=v');
    for (const w of watches) {
      const ev = (await w.done) as { type: string; object: { message?: string } };
      assert.equal(ev.type, 'ADDED', `${w.path}: ${ev.object.message ?? ''}`);
      assert.deepEqual(w.types, ['ADDED']);
    }
  });

  test('data written before an apiserver restart is there after it', async () => {
    await kube.kubectl('create', 'configmap', 'survivor', '-n', 'default', '--from-literal=state=kept');
    const first = kube.apiserverPid();
    assert.ok(first !== undefined && alive(first));
    pids.push(first);
    await kube.stopApiserver();
    assert.equal(alive(first), false, 'the apiserver process is gone');
    const down = await kube.kubectlRun(['get', 'ns', '--request-timeout=5s'], { check: false });
    assert.notEqual(down.code, 0, 'kubectl fails while the apiserver is stopped');
    await kube.startApiserver();
    const second = kube.apiserverPid();
    assert.ok(second !== undefined && second !== first && alive(second));
    pids.push(second);
    assert.equal(await kube.kubectl('get', 'cm', 'survivor', '-n', 'default', '-o', 'jsonpath={.data.state}'), 'kept');
    assert.equal(await kube.kubectl('get', 'widget', 'good', '-n', 'default', '-o', 'jsonpath={.spec.max}'), '2');
  });

  test("KubeVirt's own CRDs install and serve VirtualMachines", async () => {
    const crds = kube.bin.kubevirtCrds;
    assert.ok(existsSync(crds), `${crds} is missing: run scripts/bootstrap (or test/env/setup.sh kubevirt-crds)`);
    await kube.kubectl('create', '-f', crds);
    await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualmachines.kubevirt.io', 'crd/kubevirts.kubevirt.io');
    const crd = JSON.parse(await kube.kubectl('get', 'crd', 'virtualmachines.kubevirt.io', '-o', 'json')) as {
      spec: { group: string; names: { kind: string }; versions: { name: string; served: boolean }[] };
    };
    assert.equal(crd.spec.group, 'kubevirt.io');
    assert.equal(crd.spec.names.kind, 'VirtualMachine');
    assert.ok(crd.spec.versions.some((v) => v.name === 'v1' && v.served));
    // the schema is KubeVirt's: a VirtualMachine passes server-side validation, a typo does not
    const vm = (cores: string): string => `
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: { name: vm1, namespace: default }
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: { cores: ${cores} }
        devices: {}
        resources: { requests: { memory: 128Mi } }
`;
    await kube.kubectlRun(['create', '--dry-run=server', '-f', '-'], { input: vm('2') });
    const bad = await kube.kubectlRun(['create', '--dry-run=server', '-f', '-'], { input: vm('"two"'), check: false });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.template\.spec\.domain\.cpu\.cores/);
  });

  test('stop ends etcd and the apiserver and removes the folder', async () => {
    const etcd = kube.etcdPid;
    const apiserver = kube.apiserverPid();
    assert.ok(alive(etcd));
    assert.ok(apiserver !== undefined && alive(apiserver));
    await kube.stop();
    for (const pid of [etcd, apiserver, ...pids]) assert.equal(alive(pid), false, `pid ${pid} still runs`);
    assert.equal(existsSync(kube.dir), false);
  });
});

describe('test control plane: a start that fails', () => {
  test("reports the apiserver's own error and leaves no folder behind", async () => {
    await assert.rejects(startKube({ apiserverArgs: ['--authorization-mode=NoSuchMode'] }), (err: unknown) => {
      assert.ok(err instanceof KubeStartError);
      assert.match(err.message, /did not start/);
      assert.match(err.message, /authorization-mode \\?"NoSuchMode\\?" is not a valid mode/);
      assert.equal(existsSync(err.dir), false, `${err.dir} was left behind`);
      return true;
    });
  });
});
