// `helm template` of the project's chart with the real helm that scripts/bootstrap installs
// (test/env/lib.sh: HELM_BIN), without a cluster: for tests of what the chart renders.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

const CACHE = process.env.VIO4WD_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vio4wd');
export const HELM = join(CACHE, 'kube', 'bin', 'helm');
export const CHART = 'helm/vio4wd';

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are walked as plain data */
export type Obj = Record<string, any>;

export interface Rendered {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The rendered objects (empty when helm failed). */
  objs: Obj[];
}

/** Renders the chart with these values; helm's caches and the values file live in a temp dir. */
export function helmTemplate(values: Obj, release = 'vio4wd', namespace = 'vio4wd-system'): Rendered {
  if (!existsSync(HELM)) throw new Error(`no helm at ${HELM}: run scripts/bootstrap (test profile)`);
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-helm-'));
  try {
    for (const d of ['cache', 'config', 'data']) mkdirSync(join(dir, d));
    const file = join(dir, 'values.yaml');
    writeFileSync(file, stringify(values));
    const env = { ...process.env, HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config'), HELM_DATA_HOME: join(dir, 'data') };
    const r = spawnSync(HELM, ['template', release, CHART, '--namespace', namespace, '--values', file], { encoding: 'utf8', env });
    const objs =
      r.status === 0
        ? parseAllDocuments(r.stdout)
            .map((d) => d.toJS() as Obj | null)
            .filter((o): o is Obj => !!o)
        : [];
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, objs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The agent's config file as the chart's ConfigMap holds it. */
export function agentConfigText(objs: Obj[], release = 'vio4wd'): string {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${release}-agent`);
  if (!cm) throw new Error(`no ConfigMap ${release}-agent in: ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return cm.data['agent.yaml'] as string;
}
