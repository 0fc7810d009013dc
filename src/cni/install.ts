// Installs vio4wd-cni into a node's CNI binary directory (the agent chart's init container runs
// `vio4wd cni install --dir /host/opt/cni/bin`). A node need not have Node.js: the plugin goes
// with the node executable it runs on, in <dir>/vio4wd.d/, and <dir>/<name> is a small sh
// wrapper, so that a network config's "type": "vio4wd" finds it. Every file is written beside
// its target and renamed into place: a runtime starting the plugin meanwhile sees old or new.
// The node executable goes with the shared libraries it was linked against (ldd) and their
// dynamic loader, and runs through that loader: the node's own libraries (libstdc++, glibc) may
// be older or missing.
import { execFile } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../util/version.js';

export interface InstallOptions {
  /** The CNI binary directory, e.g. /opt/cni/bin (or its host mount in the init container). */
  dir: string;
  /** The plugin's file name = the network config's "type" (default vio4wd). */
  name?: string;
  /** The directory the wrapper refers to at run time, when the node sees `dir` elsewhere
   *  (e.g. dir /host/opt/cni/bin, runDir /opt/cni/bin). Default: dir. */
  runDir?: string;
  /** The node executable to ship (default: the one running this). */
  nodeExec?: string;
}

export interface InstallResult {
  wrapper: string;
  /** false when the same version was already installed (nothing copied). */
  copied: boolean;
}

/** The compiled tree (dist/) this module runs from. */
function distDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

export async function installPlugin(o: InstallOptions): Promise<InstallResult> {
  const name = o.name ?? 'vio4wd';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`--name: "${name}" is not a plain file name`);
  const dir = resolve(o.dir);
  const runDir = o.runDir ? resolve(o.runDir) : dir;
  const home = join(dir, `${name}.d`);
  const stamp = `${VERSION} ${o.nodeExec ?? process.execPath} ${process.version}`;
  const wrapper = join(dir, name);
  const current = await readFile(join(home, 'STAMP'), 'utf8').catch(() => '');
  let copied = false;
  if (current.trim() !== stamp) {
    const tmp = join(dir, `.${name}.d.new`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true, mode: 0o755 });
    const nodeExec = o.nodeExec ?? process.execPath;
    await copyFile(nodeExec, join(tmp, 'node'));
    await chmod(join(tmp, 'node'), 0o755);
    const libs = await sharedLibraries(nodeExec);
    if (libs.loader) {
      await mkdir(join(tmp, 'lib'));
      for (const l of [...libs.libs, libs.loader]) await copyFile(l, join(tmp, 'lib', basename(l)));
      await chmod(join(tmp, 'lib', basename(libs.loader)), 0o755);
      await writeFile(join(tmp, 'LOADER'), `${basename(libs.loader)}\n`);
    }
    // the plugin imports only node: modules and dist/ files, so dist/ and the module type suffice
    await cp(distDir(), join(tmp, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') && !src.endsWith('.d.ts') });
    await writeFile(join(tmp, 'package.json'), '{"type": "module"}\n');
    await writeFile(
      join(tmp, 'vio4wd-cni.js'),
      "// vio4wd-cni entry point (written by `vio4wd cni install`)\nimport { cniMain } from './dist/cni/main.js';\n\nprocess.exitCode = await cniMain();\n",
    );
    await writeFile(join(tmp, 'STAMP'), `${stamp}\n`);
    const old = join(dir, `.${name}.d.old`);
    await rm(old, { recursive: true, force: true });
    await rename(home, old).catch(() => undefined);
    await rename(tmp, home);
    await rm(old, { recursive: true, force: true });
    copied = true;
  }
  const runHome = join(runDir, `${name}.d`);
  const loader = (await readFile(join(home, 'LOADER'), 'utf8').catch(() => '')).trim();
  const run = loader
    ? `exec "${runHome}/lib/${loader}" --library-path "${runHome}/lib" "${runHome}/node" "${runHome}/vio4wd-cni.js" "$@"`
    : `exec "${runHome}/node" "${runHome}/vio4wd-cni.js" "$@"`;
  const script = `#!/bin/sh\n# vio4wd-cni ${VERSION} (written by \`vio4wd cni install\`): the CNI plugin for vio4wd relays\n${run}\n`;
  const tmpWrapper = join(dir, `.${name}.new`);
  await writeFile(tmpWrapper, script, { mode: 0o755 });
  await rename(tmpWrapper, wrapper);
  return { wrapper, copied };
}

/** The shared libraries `exe` loads and its dynamic loader, as ldd lists them; none when it is
 *  static or ldd is missing (then the node's own libraries are used). */
async function sharedLibraries(exe: string): Promise<{ libs: string[]; loader?: string }> {
  let out: string;
  try {
    out = (await promisify(execFile)('ldd', [exe], { encoding: 'utf8' })).stdout;
  } catch {
    return { libs: [] };
  }
  const libs: string[] = [];
  let loader: string | undefined;
  for (const line of out.split('\n')) {
    const arrow = /=>\s+(\/\S+)/.exec(line);
    if (arrow) libs.push(arrow[1]!);
    else if (/^\s*(\/\S*ld-linux\S*)/.test(line)) loader = /^\s*(\/\S+)/.exec(line)![1];
  }
  return loader ? { libs, loader } : { libs: [] };
}
