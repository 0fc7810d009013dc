// Every Kubernetes object a user would apply from the docs or examples/ is valid on a real
// kube-apiserver 1.34 serving vio4wd's CRDs (crds/), KubeVirt's and the NetworkAttachmentDefinition
// CRD: each YAML block with apiVersion and kind in README/docs/examples Markdown, and every YAML
// file under examples/, passes a server-side dry run with strict field validation. A doc example
// with a misspelt or removed field fails here before a user applies it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { installExampleCrds, startKube, type KubeEnv } from '../helpers/kube.js';
import { codeBlocks, markdownFiles } from '../helpers/markdown.js';

let kube: KubeEnv;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(n) ? [p] : [];
  });
}

/** Docs' YAML blocks that are Kubernetes objects (not agent configs or chart values). */
function docObjects(): { where: string; text: string }[] {
  return markdownFiles().filter((f) => !f.startsWith('bench/'))
    .flatMap((f) => codeBlocks(f))
    .filter((b) => b.lang === 'yaml' && /^apiVersion: \S+/m.test(b.text) && /^kind: \S+/m.test(b.text))
    .map((b) => ({ where: `${b.file}:${b.line}`, text: b.text }));
}

/** The agent's standalone config is not a Kubernetes object: the apiserver has nothing to say. */
const KUBE_EXAMPLES = () => yamlFiles('examples').filter((f) => f !== 'examples/standalone.yaml');

before(async () => {
  kube = await startKube();
  await installExampleCrds(kube);
  for (const ns of ['kubevirt', 'vms']) await kube.kubectl('create', 'namespace', ns);
  // a Pod needs its namespace's default ServiceAccount (no controller runs here)
  for (const ns of ['default', 'vms']) await kube.kubectlRun(['create', 'serviceaccount', 'default', '-n', ns], { check: false });
});

after(async () => {
  await kube?.stop();
});

async function dryRun(text: string): Promise<{ code: number; out: string }> {
  const r = await kube.kubectlRun(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], { input: text, check: false });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

test('the docs\' Kubernetes objects pass a strict server-side dry run', async () => {
  const objs = docObjects();
  for (const want of ['docs/security.md', 'docs/dra.md', 'docs/cni.md']) assert.ok(objs.some((o) => o.where.startsWith(want)), `${want} has objects`);
  const wrong: string[] = [];
  for (const o of objs) {
    const r = await dryRun(o.text);
    if (r.code !== 0 || !/ (created|configured|unchanged) \(server dry run\)/.test(r.out)) wrong.push(`${o.where}: ${r.out.trim()}`);
  }
  assert.deepEqual(wrong, []);
});

/**
 * KubeVirt fields newer than the CRDs this apiserver serves (KubeVirt 1.7.0's, test/env): a VM
 * network's `resourceClaim` (KubeVirt >= 1.9, NetworkDevicesWithDRA). The example using it is
 * checked strictly without them, and refused for those fields alone.
 */
const NEWER_THAN_SERVED: Record<string, RegExp> = {
  'examples/kubevirt-dra/20-vm-dra-nic.yaml': /^unknown field "spec\.template\.spec\.networks\[\d+\]\.resourceClaim"$/,
};

function withoutNewerFields(text: string): string {
  const vm = parse(text) as { spec: { template: { spec: { networks: Record<string, unknown>[] } } } };
  for (const n of vm.spec.template.spec.networks) delete n.resourceClaim;
  return stringify(vm);
}

test('every YAML file under examples/ passes a strict server-side dry run', async () => {
  const files = KUBE_EXAMPLES();
  assert.ok(files.length >= 10, files.join(' '));
  const wrong: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const newer = NEWER_THAN_SERVED[f];
    const r = await dryRun(newer ? withoutNewerFields(text) : text);
    if (r.code !== 0) wrong.push(`${f}: ${r.out.trim()}`);
    if (newer) {
      const whole = await dryRun(text);
      const unknown = [...whole.out.matchAll(/unknown field "[^"]+"/g)].map((m) => m[0]);
      if (whole.code === 0 || unknown.length === 0 || !unknown.every((u) => newer.test(u))) wrong.push(`${f}: refused for more than the newer KubeVirt fields: ${whole.out.trim()}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the check can fail: a misspelt field of a docs object is refused with its name', async () => {
  const policy = docObjects().find((o) => /kind: VirtioForwarderPolicy/.test(o.text))!;
  const bad = policy.text.replace('namespaces:', 'namespace:');
  assert.notEqual(bad, policy.text);
  const r = await dryRun(bad);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /unknown field "spec\.namespace"/);
});

test('docs/install.md lists every host path and API resource the chart gives the agent', async () => {
  const text = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', 'vio4wd-system', '--set', 'agent.dra.enabled=true');
  const docs = readFileSync('docs/install.md', 'utf8');
  const section = (from: string, to: string) => docs.slice(docs.indexOf(from), docs.indexOf(to));
  const paths = section('## 4. What the agent', '## 5. RBAC');
  const rbac = section('## 5. RBAC', '### API Priority');
  type Obj = { kind: string; metadata: { name: string }; spec: { template: { spec: { volumes: { hostPath?: { path: string } }[] } } }; rules: { resources: string[] }[] };
  const objs = parseAllDocuments(text).map((d) => d.toJS() as Obj).filter(Boolean);
  const hostPaths = objs.filter((o) => o.kind === 'DaemonSet').flatMap((d) => d.spec.template.spec.volumes.flatMap((v) => (v.hostPath ? [v.hostPath.path] : [])));
  assert.ok(hostPaths.length >= 10, hostPaths.join(' '));
  assert.deepEqual(hostPaths.filter((p) => !paths.includes(`\`${p}\``)), [], 'host paths missing from the table in section 4');
  for (const role of objs.filter((o) => o.kind === 'ClusterRole')) {
    const sa = role.metadata.name;
    const rows = rbac.split('\n').filter((l) => l.startsWith(`| \`${sa}\``)).join('\n');
    assert.ok(rows, `section 5 has a row for ${sa}`);
    const resources = [...new Set(role.rules.flatMap((r) => r.resources))];
    assert.deepEqual(resources.filter((r) => !new RegExp(`\\b${r.replace('/', '\\/')}\\b`).test(rows)), [], `${sa}'s resources missing from section 5`);
  }
});
