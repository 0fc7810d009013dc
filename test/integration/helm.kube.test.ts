// The Helm chart against real helm and a real kube-apiserver: lint, render with the defaults and
// with every documented option (each shows in the manifests), server-side dry runs of all of it
// (strict field validation), the schema's errors for bad values, a real `helm install`, and the
// VirtioRelay examples against the CRDs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { startKube, waitUntil, type KubeEnv } from '../helpers/kube.js';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { engineSizing } from '../../src/engine/sizing.js';

const CHART = 'helm/vio4wd';
const NS = 'vio4wd-system';

let kube: KubeEnv;
let tmp: string;

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are walked as plain data */
type Obj = Record<string, any>;

before(async () => {
  kube = await startKube();
  tmp = mkdtempSync(join(tmpdir(), 'vio4wd-helm-'));
  await kube.kubectl('create', 'namespace', NS);
  // a minimal ServiceMonitor CRD standing in for the Prometheus Operator's
  await kube.kubectlRun(['apply', '-f', '-'], { input: stringify(serviceMonitorCrd()) });
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com');
  // and the PrometheusRule CRD (the rules themselves are checked by promtool: monitoring.kube.test.ts)
  await kube.kubectlRun(['apply', '-f', '-'], { input: stringify(prometheusRuleCrd()) });
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/prometheusrules.monitoring.coreos.com');
  // where the test values put the dashboard
  await kube.kubectl('create', 'namespace', 'monitoring');
});

function prometheusRuleCrd(): Obj {
  const groups = { type: 'array', items: { type: 'object', required: ['name', 'rules'], properties: { name: { type: 'string' }, rules: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } } };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'prometheusrules.monitoring.coreos.com' },
    spec: {
      group: 'monitoring.coreos.com',
      scope: 'Namespaced',
      names: { plural: 'prometheusrules', singular: 'prometheusrule', kind: 'PrometheusRule', listKind: 'PrometheusRuleList' },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { groups } } } } } }],
    },
  };
}

/** The chart's CRDs, as `helm install` left them (installed here when a test runs alone). */
async function crds(): Promise<void> {
  await kube.kubectl('apply', '-f', `${CHART}/crds/`);
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io', 'crd/virtioforwarderpolicies.vio4wd.io');
}

after(async () => {
  await kube?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function serviceMonitorCrd(): Obj {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'servicemonitors.monitoring.coreos.com' },
    spec: {
      group: 'monitoring.coreos.com',
      scope: 'Namespaced',
      names: { plural: 'servicemonitors', singular: 'servicemonitor', kind: 'ServiceMonitor', listKind: 'ServiceMonitorList' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  required: ['selector', 'endpoints'],
                  properties: {
                    namespaceSelector: { type: 'object', properties: { matchNames: { type: 'array', items: { type: 'string' } } } },
                    selector: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    endpoints: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          port: { type: 'string' },
                          path: { type: 'string' },
                          interval: { type: 'string', pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$' },
                          scrapeTimeout: { type: 'string', pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$' },
                          relabelings: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

function valuesFile(name: string, values: Obj): string {
  const f = join(tmp, `${name}.yaml`);
  writeFileSync(f, stringify(values));
  return f;
}

async function render(values?: Obj, name = 'values'): Promise<{ text: string; objs: Obj[] }> {
  const args = ['template', 'vio4wd', CHART, '--namespace', NS];
  if (values) args.push('--values', valuesFile(name, values));
  const text = await kube.helm(...args);
  const objs = parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => !!o);
  return { text, objs };
}

function find(objs: Obj[], kind: string, name?: string): Obj {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `no ${kind}${name ? ` ${name}` : ''} in: ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

/** GET path with a bearer token: the status and the APF FlowSchema and priority level (uids) the apiserver used. */
function apfHeaders(token: string, path: string): Promise<{ status: number; flowSchema: string; priorityLevel: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${kube.server}${path}`, { ca: readFileSync(kube.caFile), headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, flowSchema: String(res.headers['x-kubernetes-pf-flowschema-uid'] ?? ''), priorityLevel: String(res.headers['x-kubernetes-pf-prioritylevel-uid'] ?? '') }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function dryRun(text: string, namespace = NS): Promise<void> {
  const r = await kube.kubectlRun(['apply', '--dry-run=server', '--validate=strict', '-n', namespace, '-f', '-'], { input: text, check: false });
  assert.equal(r.code, 0, `kubectl apply --dry-run=server: ${r.stderr}`);
}

/** The agent config in the ConfigMap, read by the agent's own loader (schema + defaults). */
function agentConfig(objs: Obj[], cm: string): ReturnType<typeof resolveConfig> {
  const text = find(objs, 'ConfigMap', cm).data['agent.yaml'] as string;
  return resolveConfig(parseConfigText(text, 'ConfigMap agent.yaml').config);
}

// Every value in values.yaml, changed; `disabled` turns off what `all` needs on.
const ALL: Obj = {
  image: { repository: 'registry.example.com/net/vio4wd', tag: '0.1.0-test', pullPolicy: 'Always' },
  imagePullSecrets: [{ name: 'regcred' }],
  nameOverride: 'vfwd',
  fullnameOverride: 'vfwd-test',
  commonLabels: { team: 'net' },
  agent: {
    logLevel: 'debug',
    privileged: false,
    capabilities: ['IPC_LOCK', 'SYS_ADMIN', 'NET_ADMIN', 'SYS_RAWIO'],
    hostNetwork: false,
    socketDir: '/run/vfwd/sockets',
    allowVirtualDevices: ['net_tap'],
    leaseRenewSeconds: 5,
    devicePlugin: { pluginDir: '/data/kubelet/device-plugins', devinfoDir: '/run/devinfo/dp', namespaceCheck: false },
    podResources: { dir: '/data/kubelet/pod-resources' },
    // 100 relays on each of 2 NUMA nodes need 1Gi each (the sizing itself: helm.sizing.test.ts)
    hugepages: { dir: '/mnt/huge1g', size: '1Gi', amount: '2Gi', relays: 100, numaNodes: 2 },
    vfioDir: '/dev/vfio-test',
    sysDir: '/host-sys',
    engine: { workerCpus: [2, 3], mainCpu: 0, inMemory: false, socketMemMb: [1024, 0], extraEalArgs: ['--iova-mode=va'], poolQueuePairs: 64, rxDescriptors: 128, txDescriptors: 512, jumbo: true, idleSweepMicros: 500 },
    sriov: { bindVfio: ['ens1f0:4', '0000:3b:02.1'], setMac: false, vfProgrammer: 'standin', vfLimits: { allowedVlans: [0, '100-199'], allowSpoofchkOff: true } },
    cni: { binDir: '/usr/libexec/cni', type: 'vfwd', socketDir: '/run/vfwd/cni', stateDir: '/var/lib/vfwd', allocationCheck: false },
    dra: { enabled: true, kubeletDir: '/data/kubelet', cdiDir: '/run/cdi-test', metadataDir: '/run/vfwd/dra', stateDir: '/var/lib/vfwd-dra', deviceClasses: true },
    control: { ipcDir: '/run/vfwd/ipc' },
    metrics: { port: 19464, expose: true },
    extraConfig: { vhostUser: { perm: '0660' }, engine: { tso: true } },
    resources: { requests: { cpu: '2', memory: '512Mi' }, limits: { cpu: '2', memory: '512Mi' } },
    // null removes a default key (Helm merges maps)
    nodeSelector: { 'kubernetes.io/os': null, 'vio4wd.io/agent': 'true' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'nfv', effect: 'NoSchedule' }],
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'sriov', operator: 'Exists' }] }] } } },
    priorityClassName: 'system-cluster-critical',
    podAnnotations: { 'example.com/note': 'agent' },
    podLabels: { tier: 'dataplane' },
    updateStrategy: { type: 'OnDelete', rollingUpdate: null },
    terminationGracePeriodSeconds: 60,
    livenessProbe: { initialDelaySeconds: 20, periodSeconds: 15, timeoutSeconds: 5, failureThreshold: 4 },
    readinessProbe: { initialDelaySeconds: 1, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 10 },
  },
  operator: {
    replicas: 3,
    logLevel: 'warn',
    leaseName: 'vfwd-leader',
    metrics: { port: 18080 },
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '128Mi' } },
    nodeSelector: { 'kubernetes.io/os': null, 'node-role.kubernetes.io/control-plane': '' },
    tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }],
    affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'x' } } }] } },
    priorityClassName: 'system-cluster-critical',
    podAnnotations: { 'example.com/note': 'operator' },
    podLabels: { tier: 'control' },
    podDisruptionBudget: { minAvailable: 2 },
  },
  serviceAccount: {
    agent: { name: 'vfwd-node', annotations: { 'example.com/sa': 'agent' } },
    operator: { name: 'vfwd-ctl', annotations: { 'example.com/sa': 'operator' } },
  },
  metrics: {
    serviceMonitor: { enabled: true, interval: '15s', scrapeTimeout: '10s', labels: { release: 'prometheus' } },
    prometheusRule: { enabled: true, labels: { release: 'prometheus' } },
    dashboard: { enabled: true, labels: { grafana_dashboard: 'vio4wd' }, namespace: 'monitoring' },
  },
  kubevirt: { bindingName: 'fastnic', sidecarImage: 'registry.example.com/net/sidecar:1' },
  flowControl: { nominalConcurrencyShares: 20, lendablePercent: 30, matchingPrecedence: 500 },
  policies: [
    {
      name: 'fast',
      resourceName: 'vio4wd.io/fast',
      nodeSelector: { matchLabels: { 'vio4wd.io/sriov': 'true' } },
      vfs: { pfNames: ['ens1f0'], devices: [{ vendor: '8086', device: '1889' }], virtualDevices: ['net_tap'] },
      limits: { maxQueues: 4, maxMtu: 9000 },
      socket: { group: '107', directoryMode: '2770', perm: '0660' },
      namespaces: ['vms'],
    },
  ],
};

const DISABLED: Obj = {
  agent: { devicePlugin: { enabled: false }, control: { enabled: false }, cni: { enabled: false }, dra: { deviceClasses: false }, hugepages: { amount: '' }, podResources: { enabled: false } },
  operator: { replicas: 1, podDisruptionBudget: { enabled: false } },
  serviceAccount: { agent: { create: false, name: 'existing-agent' }, operator: { create: false, name: 'existing-operator' } },
  rbac: { create: false },
  metrics: { service: { enabled: false } },
  flowControl: { enabled: false },
};

const OFF: Obj = { agent: { enabled: false }, operator: { enabled: false } };

/** Leaf values by path (keys joined with '/': map keys like kubernetes.io/os hold dots). */
function leaves(o: unknown, prefix: string[] = []): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length) {
    for (const [k, v] of Object.entries(o)) for (const [p, x] of leaves(v, [...prefix, k])) out.set(p, x);
  } else out.set(JSON.stringify(prefix), o);
  return out;
}

function at(o: Obj, path: string): unknown {
  // below a null (a removed map) counts as removed too
  return (JSON.parse(path) as string[]).reduce<any>((x, k) => (x === undefined || x === null ? x : x[k]), o);
}

test('helm install is the whole installation: CRDs from the chart, then every object', async () => {
  assert.notEqual((await kube.kubectlRun(['get', 'crd/virtiorelays.vio4wd.io'], { check: false })).code, 0, 'no CRDs before');
  const r = await kube.helmRun(['install', 'vio4wd', CHART, '--namespace', 'vio4wd-install', '--create-namespace'], { check: false });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /STATUS: deployed/);
  // the CRDs came from the chart's crds/
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io');
  const got = await kube.kubectl('get', 'daemonset,deployment,serviceaccount,configmap,service', '-n', 'vio4wd-install', '-o', 'name');
  for (const n of ['daemonset.apps/vio4wd-agent', 'deployment.apps/vio4wd-operator', 'serviceaccount/vio4wd-agent', 'serviceaccount/vio4wd-operator', 'configmap/vio4wd-agent', 'service/vio4wd-agent-metrics']) {
    assert.ok(got.split('\n').includes(n), `${n} missing after helm install: ${got}`);
  }
  await kube.kubectl('get', 'clusterrole/vio4wd-agent', 'clusterrole/vio4wd-operator', 'clusterrolebinding/vio4wd-agent', 'role/vio4wd-operator-leader-election', '-n', 'vio4wd-install');
  // the apiserver puts the agent's and the operator's requests in the chart's priority level,
  // and other users' (here the admin's ServiceAccount-less token) elsewhere: it says which in
  // the X-Kubernetes-PF-* headers of every answer
  const uid = async (what: string): Promise<string> => (await kube.kubectl('get', what, '-o', 'jsonpath={.metadata.uid}')).trim();
  const [fsUid, plUid] = [await uid('flowschema/vio4wd'), await uid('prioritylevelconfiguration/vio4wd')];
  for (const sa of ['vio4wd-agent', 'vio4wd-operator']) {
    const h = await apfHeaders(await kube.serviceAccountToken('vio4wd-install', sa), '/apis/vio4wd.io/v1alpha1/virtiorelays?limit=1');
    assert.deepEqual([h.status, h.flowSchema, h.priorityLevel], [200, fsUid, plUid], `${sa}'s request`);
  }
  await kube.kubectl('create', 'serviceaccount', 'someone-else', '-n', 'vio4wd-install');
  const other = await apfHeaders(await kube.serviceAccountToken('vio4wd-install', 'someone-else'), '/apis/vio4wd.io/v1alpha1/virtiorelays?limit=1');
  assert.equal(other.status, 403);
  assert.notEqual(other.flowSchema, fsUid, 'another ServiceAccount of the namespace is not in the chart\'s level');
  assert.equal(other.flowSchema, await uid('flowschema/service-accounts'));
  const u = await kube.helmRun(['uninstall', 'vio4wd', '--namespace', 'vio4wd-install'], { check: false });
  assert.equal(u.code, 0, u.stderr);
  await waitUntil('uninstall removed the ClusterRoles', async () => (await kube.kubectlRun(['get', 'clusterrole/vio4wd-agent'], { check: false })).code !== 0);
  // helm keeps CRDs on uninstall
  await kube.kubectl('get', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io');
});

test('helm lint passes with the defaults and with every option set', async () => {
  for (const [name, v] of [['defaults', undefined], ['all', ALL], ['disabled', DISABLED], ['off', OFF]] as const) {
    const args = ['lint', CHART, '--strict'];
    if (v) args.push('--values', valuesFile(`lint-${name}`, v));
    const r = await kube.helmRun(args, { check: false });
    assert.equal(r.code, 0, `helm lint (${name}): ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('the test values change every value documented in values.yaml', () => {
  const defaults = leaves(parse(readFileSync(`${CHART}/values.yaml`, 'utf8')));
  const unchanged = [...defaults.keys()]
    .filter((p) => [ALL, DISABLED, OFF].every((v) => at(v, p) === undefined || JSON.stringify(at(v, p)) === JSON.stringify(defaults.get(p))))
    .map((p) => (JSON.parse(p) as string[]).join('.'));
  assert.deepEqual(unchanged, [], 'values.yaml has options no test sets: add them to ALL or DISABLED');
});

test('default values: the agent DaemonSet mounts the host paths, requests hugepages and probes health', async () => {
  await crds();
  const { text, objs } = await render();
  const ds = find(objs, 'DaemonSet', 'vio4wd-agent');
  const pod = ds.spec.template.spec;
  // upgrades hand the relays over from the old agent to a new one beside it (docs/upgrade.md)
  assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  const c = pod.containers[0];
  assert.equal(c.image, 'ghcr.io/vio4wd/vio4wd:0.1.0');
  assert.deepEqual(c.args.slice(0, 2), ['agent', '--kubernetes']);
  assert.equal(pod.serviceAccountName, 'vio4wd-agent');
  assert.equal(pod.hostNetwork, true);
  // a node agent: evicted last, and on every node whatever its taints
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  assert.equal(c.securityContext.privileged, true);
  assert.equal(c.securityContext.runAsUser, 0);
  assert.deepEqual(c.env.find((e: Obj) => e.name === 'NODE_NAME').valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  const hostPaths = Object.fromEntries(pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => [v.name, v.hostPath.path]));
  const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.name, m.mountPath]));
  for (const p of ['/var/lib/kubelet/device-plugins', '/var/lib/kubelet/pod-resources', '/var/run/vio4wd/sockets', '/dev/hugepages', '/dev/vfio', '/sys', '/var/run/k8s.cni.cncf.io/devinfo/dp', '/run/vio4wd', '/var/lib/vio4wd']) {
    const vol = Object.keys(hostPaths).find((k) => hostPaths[k] === p);
    assert.ok(vol, `no hostPath volume for ${p}`);
    assert.equal(mounts[vol], p, `${p} is mounted at the same path in the agent`);
  }
  // what 512 relays need by vio4wd doctor's formula (helm.sizing.test.ts checks it for more sizes)
  const need = `${engineSizing({ relays: 512, workers: 1 }).pages2M * 2}Mi`;
  assert.equal(c.resources.requests['hugepages-2Mi'], need);
  assert.equal(c.resources.limits['hugepages-2Mi'], need, 'hugepage limits equal requests');
  assert.deepEqual([c.livenessProbe.httpGet.path, c.readinessProbe.httpGet.path], ['/healthz', '/readyz']);
  // on the host network a declared port is a host port, which would keep an upgrade's new pod
  // (maxSurge) off the node: none is declared, the probes name the port by number
  assert.equal(c.ports, undefined);
  assert.equal(c.readinessProbe.httpGet.port, 9464);
  // the ConfigMap is a config the agent accepts, and it agrees with the mounts and the probes
  const cfg = agentConfig(objs, 'vio4wd-agent');
  assert.equal(cfg.kubernetes.enabled, true);
  assert.equal(cfg.kubernetes.socketDir, '/var/run/vio4wd/sockets');
  assert.equal(cfg.kubernetes.nosymfollowSocketRoot, true, "the agent's own view of the socket root follows no pod's symlink");
  assert.equal(cfg.devicePlugin.pluginDir, '/var/lib/kubelet/device-plugins');
  assert.equal(cfg.devicePlugin.devinfoDir, '/var/run/k8s.cni.cncf.io/devinfo/dp');
  // a VirtioRelay's relay only to a pod of its namespace: checked against kubelet's pod-resources
  assert.equal(cfg.devicePlugin.podResourcesSocket, '/var/lib/kubelet/pod-resources/kubelet.sock');
  assert.equal(cfg.engine.hugeDir, '/dev/hugepages');
  // loopback by default; the kubelet probes it there (host network)
  assert.equal(cfg.metrics.address, '127.0.0.1:9464');
  assert.equal(cfg.metrics.authorization, false);
  assert.equal(c.livenessProbe.httpGet.host, '127.0.0.1');
  assert.deepEqual(cfg.kubernetes.allowVirtualDevices, [], 'no virtual devices unless the admin opts in');
  assert.equal(cfg.kubernetes.leaseRenewSeconds, 10, "the node Lease renewed as often as kubelet's");
  // the Lease in the pod's namespace: the config names none, the agent reads POD_NAMESPACE
  assert.doesNotMatch(find(objs, 'ConfigMap', 'vio4wd-agent').data['agent.yaml'] as string, /leaseNamespace/);
  assert.deepEqual(c.env.find((e: Obj) => e.name === 'POD_NAMESPACE').valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
  assert.deepEqual(
    cfg.cni,
    { enabled: true, socket: '/run/vio4wd/agent.sock', statePath: '/var/lib/vio4wd/attachments.json', allocationCheck: true, podResourcesSocket: '/var/lib/kubelet/pod-resources/kubelet.sock' },
    "vio4wd-cni's socket is where the plugin looks by default; ADD is checked against kubelet's allocations",
  );
  assert.equal(cfg.sriov.vfProgrammer, 'netlink');
  assert.deepEqual(cfg.sriov.vfLimits, { allowedVlans: ['0'], allowSpoofchkOff: false }, 'pod attachments: untagged only, spoof checking on');
  assert.equal(cfg.metrics.podResourcesSocket, '/var/lib/kubelet/pod-resources/kubelet.sock', "the relay-to-pod join asks kubelet's socket in the mounted directory");
  assert.equal(c.volumeMounts.find((m: Obj) => m.mountPath === '/var/lib/kubelet/pod-resources').readOnly, true);
  assert.ok(!objs.some((o) => o.kind === 'PrometheusRule' || o.metadata.labels?.grafana_dashboard), 'no rules and no dashboard unless enabled');
  const op = find(objs, 'Deployment', 'vio4wd-operator');
  assert.equal(op.spec.replicas, 2);
  assert.equal(op.spec.template.spec.securityContext.runAsNonRoot, true);
  assert.ok(op.spec.template.spec.containers[0].args.includes('--lease-name=vio4wd-operator'));
  assert.ok(!objs.some((o) => o.kind === 'ServiceMonitor'), 'no ServiceMonitor unless enabled');
  await dryRun(text);
});

test('every option shows in the rendered manifests, which the apiserver accepts', async () => {
  const rendered = await render(ALL, 'all');
  const objs = rendered.objs;
  let text = rendered.text;
  for (const o of objs) assert.equal(o.metadata.labels?.team, 'net', `commonLabels on ${o.kind}/${o.metadata.name}`);
  const ds = find(objs, 'DaemonSet', 'vfwd-test-agent');
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  assert.equal(c.image, 'registry.example.com/net/vio4wd:0.1.0-test');
  assert.equal(c.imagePullPolicy, 'Always');
  assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }]);
  assert.equal(ds.metadata.labels['app.kubernetes.io/name'], 'vfwd');
  assert.equal(c.securityContext.privileged, false);
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ALL.agent.capabilities });
  assert.equal(pod.hostNetwork, false);
  assert.equal(pod.dnsPolicy, undefined);
  const hostPaths = pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => v.hostPath.path).sort();
  assert.deepEqual(hostPaths, [
    '/data/kubelet/device-plugins', '/data/kubelet/plugins/vio4wd.io', '/data/kubelet/plugins_registry', '/data/kubelet/pod-resources', '/dev/vfio-test', '/host-sys', '/mnt/huge1g',
    '/run/cdi-test', '/run/devinfo/dp', '/run/vfwd/cni', '/run/vfwd/dra', '/run/vfwd/ipc', '/run/vfwd/sockets', '/usr/libexec/cni', '/var/lib/vfwd', '/var/lib/vfwd-dra',
  ]);
  // vio4wd-cni: installed by an init container into the nodes' CNI directory under its type name
  const init = pod.initContainers.find((x: Obj) => x.name === 'install-cni');
  assert.deepEqual(init.args, ['cni', 'install', '--dir=/host/cni-bin', '--run-dir=/usr/libexec/cni', '--name=vfwd']);
  assert.equal(init.image, 'registry.example.com/net/vio4wd:0.1.0-test');
  assert.equal(pod.volumes.find((v: Obj) => v.name === init.volumeMounts[0].name).hostPath.path, '/usr/libexec/cni');
  assert.equal(c.volumeMounts.find((m: Obj) => m.name === 'cni-api').mountPath, '/run/vfwd/cni');
  assert.equal(c.volumeMounts.find((m: Obj) => m.name === 'sys').mountPath, '/sys', 'host sysfs (wherever it is) is /sys in the agent');
  assert.deepEqual(c.resources.requests, { cpu: '2', memory: '512Mi', 'hugepages-1Gi': '2Gi' });
  assert.deepEqual(c.resources.limits, { cpu: '2', memory: '512Mi', 'hugepages-1Gi': '2Gi' });
  assert.equal(c.ports[0].containerPort, 19464);
  assert.deepEqual({ ...c.livenessProbe, httpGet: undefined }, { ...ALL.agent.livenessProbe, httpGet: undefined });
  assert.deepEqual({ ...c.readinessProbe, httpGet: undefined }, { ...ALL.agent.readinessProbe, httpGet: undefined });
  assert.deepEqual(pod.nodeSelector, { 'vio4wd.io/agent': 'true' });
  assert.deepEqual(pod.tolerations, ALL.agent.tolerations);
  assert.deepEqual(pod.affinity, ALL.agent.affinity);
  assert.equal(pod.priorityClassName, 'system-cluster-critical');
  assert.equal(pod.terminationGracePeriodSeconds, 60);
  assert.equal(pod.serviceAccountName, 'vfwd-node');
  assert.equal(ds.spec.template.metadata.annotations['example.com/note'], 'agent');
  assert.equal(ds.spec.template.metadata.labels.tier, 'dataplane');
  assert.deepEqual(ds.spec.updateStrategy, { type: 'OnDelete' });
  const cfg = agentConfig(objs, 'vfwd-test-agent');
  assert.equal(cfg.logLevel, 'debug');
  assert.deepEqual(cfg.engine.workerCpus, [2, 3]);
  assert.equal(cfg.engine.mainCpu, 0);
  assert.equal(cfg.engine.inMemory, false);
  assert.deepEqual(cfg.engine.socketMemMb, [1024, 0]);
  assert.deepEqual(cfg.engine.extraEalArgs, ['--iova-mode=va']);
  assert.equal(cfg.engine.hugeDir, '/mnt/huge1g');
  assert.deepEqual([cfg.engine.poolQueuePairs, cfg.engine.rxDescriptors, cfg.engine.txDescriptors, cfg.engine.jumbo, cfg.engine.idleSweepMicros], [64, 128, 512, true, 500]);
  assert.equal(cfg.engine.tso, true, 'extraConfig merged');
  assert.equal(cfg.vhostUser.perm, '0660', 'extraConfig merged');
  assert.deepEqual(cfg.sriov, { sysRoot: '/', bindVfio: ['ens1f0:4', '0000:3b:02.1'], setMac: false, standIns: {}, vfProgrammer: 'standin', vfLimits: { allowedVlans: [0, '100-199'], allowSpoofchkOff: true } });
  assert.deepEqual(cfg.cni, { enabled: true, socket: '/run/vfwd/cni/agent.sock', statePath: '/var/lib/vfwd/attachments.json', allocationCheck: false });
  assert.equal(cfg.control.ipcDir, '/run/vfwd/ipc');
  assert.equal(cfg.kubernetes.socketDir, '/run/vfwd/sockets');
  assert.equal(cfg.devicePlugin.pluginDir, '/data/kubelet/device-plugins');
  assert.equal(cfg.devicePlugin.devinfoDir, '/run/devinfo/dp');
  // without the host network the pod's address is reachable: metrics only to authorised callers
  assert.equal(cfg.metrics.address, '0.0.0.0:19464');
  assert.equal(cfg.metrics.authorization, true);
  assert.equal(c.livenessProbe.httpGet.host, undefined);
  assert.deepEqual(cfg.kubernetes.allowVirtualDevices, ['net_tap']);
  assert.equal(cfg.kubernetes.leaseRenewSeconds, 5);
  // DRA: the kubelet plugin's directories, CDI and metadata dirs, checkpoint; a DeviceClass per pool; RBAC
  assert.deepEqual(cfg.dra, {
    enabled: true, registryDir: '/data/kubelet/plugins_registry', pluginDir: '/data/kubelet/plugins/vio4wd.io', cdiDir: '/run/cdi-test', metadataDir: '/run/vfwd/dra', statePath: '/var/lib/vfwd-dra/dra-claims.json', resyncSeconds: 10,
  });
  for (const p of ['/data/kubelet/plugins_registry', '/data/kubelet/plugins/vio4wd.io', '/run/cdi-test', '/run/vfwd/dra', '/var/lib/vfwd-dra']) {
    assert.ok(c.volumeMounts.some((m: Obj) => m.mountPath === p), `agent mounts ${p}`);
  }
  const dc = find(objs, 'DeviceClass', 'fast.vio4wd.io');
  assert.match(dc.spec.selectors[0].cel.expression, /device\.driver == "vio4wd\.io" && device\.attributes\["vio4wd\.io"\]\.pool == "vio4wd\.io\/fast"/);
  const agentRole = find(objs, 'ClusterRole', 'vfwd-test-agent');
  assert.ok(agentRole.rules.some((r: Obj) => r.apiGroups.includes('resource.k8s.io') && r.resources.includes('resourceslices') && r.verbs.includes('create')));
  assert.ok(agentRole.rules.some((r: Obj) => r.apiGroups.includes('resource.k8s.io') && r.resources.includes('resourceclaims/status') && r.verbs.includes('patch')));
  const pol = find(objs, 'VirtioForwarderPolicy', 'fast');
  const { name: _name, ...policySpec } = ALL.policies[0];
  assert.deepEqual(pol.spec, policySpec);
  assert.ok(objs.some((o) => o.kind === 'ClusterRole' && o.metadata.name === 'vfwd-test-metrics-reader'), 'a metrics-reader role for scrapers when metrics are exposed');
  assert.equal(cfg.metrics.podResourcesSocket, '/data/kubelet/pod-resources/kubelet.sock');
  assert.equal(cfg.devicePlugin.podResourcesSocket, undefined, 'namespaceCheck: false');
  const rule = find(objs, 'PrometheusRule', 'vfwd-test');
  assert.equal(rule.metadata.labels.release, 'prometheus');
  assert.ok(rule.spec.groups.some((g: Obj) => g.rules.some((r: Obj) => r.alert === 'Vio4wdWorkerSaturated')));
  const dash = find(objs, 'ConfigMap', 'vfwd-test-dashboard');
  assert.deepEqual([dash.metadata.namespace, dash.metadata.labels.grafana_dashboard], ['monitoring', 'vio4wd']);
  assert.equal(JSON.parse(dash.data['vio4wd.json']).uid, 'vio4wd-overview');
  // the dashboard goes where Grafana's sidecar looks, the rest in the release namespace
  const docs = text.split(/^---$/m);
  const inMonitoring = (d: string): boolean => /^\s*namespace: monitoring$/m.test(d);
  await dryRun(docs.filter(inMonitoring).join('\n---\n'), 'monitoring');
  text = docs.filter((d) => !inMonitoring(d)).join('\n---\n');

  const dep = find(objs, 'Deployment', 'vfwd-test-operator');
  const opod = dep.spec.template.spec;
  const oc = opod.containers[0];
  assert.equal(dep.spec.replicas, 3);
  assert.deepEqual(oc.args, ['operator', '--lease-name=vfwd-leader', '--metrics-address=:18080', '--log-level=warn']);
  assert.deepEqual(oc.resources, ALL.operator.resources);
  assert.deepEqual(opod.nodeSelector, { 'node-role.kubernetes.io/control-plane': '' });
  assert.deepEqual(opod.tolerations, ALL.operator.tolerations);
  assert.deepEqual(opod.affinity, ALL.operator.affinity);
  assert.equal(opod.priorityClassName, 'system-cluster-critical');
  assert.equal(opod.serviceAccountName, 'vfwd-ctl');
  assert.equal(dep.spec.template.metadata.annotations['example.com/note'], 'operator');
  assert.equal(dep.spec.template.metadata.labels.tier, 'control');
  assert.equal(find(objs, 'PodDisruptionBudget').spec.minAvailable, 2);
  const role = find(objs, 'Role', 'vfwd-test-operator-leader-election');
  assert.deepEqual(role.rules[1].resourceNames, ['vfwd-leader']);
  // API Priority and Fairness: the two ServiceAccounts in a level of their own
  const fs = find(objs, 'FlowSchema', 'vfwd-test');
  assert.deepEqual(fs.spec.rules[0].subjects.map((x: Obj) => x.serviceAccount), [{ name: 'vfwd-node', namespace: NS }, { name: 'vfwd-ctl', namespace: NS }]);
  assert.deepEqual([fs.spec.matchingPrecedence, fs.spec.priorityLevelConfiguration.name, fs.spec.distinguisherMethod.type], [500, 'vfwd-test', 'ByUser']);
  const plc = find(objs, 'PriorityLevelConfiguration', 'vfwd-test').spec.limited;
  assert.deepEqual([plc.nominalConcurrencyShares, plc.lendablePercent], [20, 30]);
  assert.equal(find(objs, 'ServiceAccount', 'vfwd-node').metadata.annotations['example.com/sa'], 'agent');
  assert.equal(find(objs, 'ServiceAccount', 'vfwd-ctl').metadata.annotations['example.com/sa'], 'operator');
  const sm = find(objs, 'ServiceMonitor');
  assert.equal(sm.metadata.labels.release, 'prometheus');
  assert.deepEqual([sm.spec.endpoints[0].interval, sm.spec.endpoints[0].scrapeTimeout], ['15s', '10s']);
  assert.equal(find(objs, 'Service', 'vfwd-test-agent-metrics').spec.ports[0].port, 19464);
  assert.equal(find(objs, 'Service', 'vfwd-test-operator-metrics').spec.ports[0].port, 18080);
  await dryRun(text);
  // NOTES.txt (helm install --dry-run renders it) names the KubeVirt binding and sidecar image
  const notes = await kube.helm('install', 'vio4wd', CHART, '--namespace', NS, '--dry-run=client', '--values', valuesFile('all', ALL));
  assert.match(notes, /"fastnic":\{"sidecarImage":"registry\.example\.com\/net\/sidecar:1"/);
});

test('components and objects can be turned off; what remains is still accepted', async () => {
  const dis = await render(DISABLED, 'disabled');
  const kinds = (objs: Obj[]) => objs.map((o) => o.kind).sort();
  assert.deepEqual(kinds(dis.objs), ['ConfigMap', 'DaemonSet', 'Deployment']);
  const pod = find(dis.objs, 'DaemonSet').spec.template.spec;
  assert.equal(pod.serviceAccountName, 'existing-agent');
  assert.equal(find(dis.objs, 'Deployment').spec.template.spec.serviceAccountName, 'existing-operator');
  const vols = pod.volumes.map((v: Obj) => v.name);
  for (const gone of ['device-plugins', 'devinfo', 'control', 'pod-resources', 'cni-bin', 'cni-api', 'cni-state']) assert.ok(!vols.includes(gone), `${gone} volume without its feature`);
  assert.equal(pod.initContainers, undefined, 'no CNI install without vio4wd-cni');
  const res = pod.containers[0].resources;
  assert.ok(!Object.keys({ ...res.requests, ...res.limits }).some((k) => k.startsWith('hugepages-')), 'no hugepage resources when amount is empty');
  const cfg = agentConfig(dis.objs, 'vio4wd-agent');
  assert.equal(cfg.devicePlugin.enabled, false);
  assert.equal(cfg.control.enabled, false);
  await dryRun(dis.text);
  const off = await render(OFF, 'off');
  assert.deepEqual(kinds(off.objs), []);
  const r = await kube.helmRun(['template', 'x', CHART, '--set', 'serviceAccount.agent.create=false'], { check: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /serviceAccount\.agent\.name: name an existing ServiceAccount/);
});

test('values.schema.json rejects bad values with errors that name the field', async () => {
  const cases: [string[], RegExp][] = [
    [['agent.hugepages.size=3Mi'], /at '\/agent\/hugepages\/size': value must be one of '2Mi', '1Gi'/],
    [['agent.hugepages.amount=lots'], /at '\/agent\/hugepages\/amount': 'lots' does not match pattern/],
    [['agent.engine.workerCpus=null'], /at '\/agent\/engine': missing property 'workerCpus'/],
    [['--set-json', 'agent.engine.workerCpus=[]'], /at '\/agent\/engine\/workerCpus': minItems: got 0, want 1/],
    [['agent.engine.workerCpus[0]=-1'], /at '\/agent\/engine\/workerCpus\/0': minimum: got -1, want 0/],
    [['agent.capabilities[0]=CAP_NET_ADMIN'], /at '\/agent\/capabilities\/0': value must be one of 'AUDIT_CONTROL'/],
    [['agent.socketDir=var/run/sockets'], /at '\/agent\/socketDir': 'var\/run\/sockets' does not match pattern '\^\/'/],
    [['agent.logLevel=verbose'], /at '\/agent\/logLevel': value must be one of 'trace'/],
    [['agent.hugepage=1Gi'], /at '\/agent': additional properties 'hugepage' not allowed/],
    [['operator.replicas=0'], /at '\/operator\/replicas': minimum: got 0, want 1/],
    [['operator.metrics.port=70000'], /at '\/operator\/metrics\/port': maximum: got 70,000, want 65,535/],
    [['image.pullPolicy=Sometimes'], /at '\/image\/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'/],
    [['metrics.serviceMonitor.interval=often'], /at '\/metrics\/serviceMonitor\/interval': 'often' does not match pattern/],
  ];
  for (const [sets, want] of cases) {
    const args = sets[0]?.startsWith('--') ? sets : sets.flatMap((s) => ['--set', s]);
    const r = await kube.helmRun(['template', 'x', CHART, ...args], { check: false });
    assert.notEqual(r.code, 0, `${sets.join(' ')} was accepted`);
    assert.match(r.stderr, want, `error for ${sets.join(' ')}`);
  }
});

test("the chart's CRDs are the generated ones in crds/", () => {
  const top = readdirSync('crds').sort();
  assert.deepEqual(readdirSync(`${CHART}/crds`).sort(), top);
  for (const f of top) assert.equal(readFileSync(`${CHART}/crds/${f}`, 'utf8'), readFileSync(`crds/${f}`, 'utf8'), `${CHART}/crds/${f} differs from crds/${f}: run npm run gen:crds`);
});

test('the VirtioRelay examples pass a server-side dry run against the CRDs', async () => {
  await crds();
  // the pool example's consumer Pod needs the namespace's default ServiceAccount (no controller here)
  await kube.kubectlRun(['create', 'serviceaccount', 'default', '-n', 'default'], { check: false });
  const files = readdirSync('examples').filter((f) => /^virtiorelay-.*\.yaml$/.test(f)).sort();
  assert.deepEqual(files, ['virtiorelay-pci.yaml', 'virtiorelay-pool.yaml', 'virtiorelay-selector.yaml']);
  for (const f of files) {
    const r = await kube.kubectlRun(['apply', '--dry-run=server', '--validate=strict', '-f', `examples/${f}`], { check: false });
    assert.equal(r.code, 0, `examples/${f}: ${r.stderr}`);
    assert.match(r.stdout, /virtiorelay\.vio4wd\.io\/\S+ created \(server dry run\)/);
  }
  const pool = await kube.kubectl('apply', '--dry-run=server', '-f', 'examples/virtiorelay-pool.yaml', '-o', 'json');
  const items = (JSON.parse(pool) as { items: Obj[] }).items.filter((i) => i.kind === 'VirtioRelay');
  assert.ok(items.length >= 3, 'a pool has several relays');
  assert.equal(new Set(items.map((i) => i.spec.resourceName)).size, 1, 'the relays of a pool share a resourceName');
  // and the examples are not so loose that anything passes: a broken copy is refused
  const broken = readFileSync('examples/virtiorelay-pci.yaml', 'utf8').replace('queues: 2', 'queues: 64');
  const r = await kube.kubectlRun(['apply', '--dry-run=server', '-f', '-'], { input: broken, check: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /queues must be between 1 and 32/);
});
