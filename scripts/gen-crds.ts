// Writes crds/*.yaml (and the Helm chart's copies) from src/kube/crd-schemas.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { crdObjects } from '../src/kube/index.js';

export function crdFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const crd of crdObjects()) {
    const name = (crd.metadata as { name: string }).name;
    const [plural, ...group] = name.split('.');
    const text = `# Generated from src/kube/crd-schemas.ts by \`npm run gen:crds\`: edit that file, not this one.\n${stringify(crd, { lineWidth: 0 })}`;
    out.set(`${group.join('.')}_${plural}.yaml`, text);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const dir of ['crds', 'helm/vio4wd/crds']) {
    mkdirSync(dir, { recursive: true });
    for (const [file, text] of crdFiles()) writeFileSync(`${dir}/${file}`, text);
  }
  console.log('wrote crds/ and helm/vio4wd/crds/');
}
