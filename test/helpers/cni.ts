// Drives vio4wd-cni the way a container runtime (via Multus) does: containernetworking/cni's own
// cnitool (libcni), built by test/env/build-cnitool.sh, runs the plugin that `vio4wd cni install`
// put into a CNI binary directory, with network configs carrying what Multus adds (deviceID,
// capabilities -> runtimeConfig). Each pod is a network namespace (test/helpers/netns.ts).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Netns } from './netns.js';

const execFileP = promisify(execFile);

/** cnitool as bootstrap built it (test/env/lib.sh's CNITOOL_BIN). */
export function cnitoolPath(): string {
  const p = execFileSync('bash', ['-c', 'source test/env/lib.sh && echo "$CNITOOL_BIN"'], { encoding: 'utf8' }).trim();
  if (!existsSync(p)) throw new Error(`cnitool is not built at ${p}: run scripts/bootstrap (or test/env/setup.sh cnitool)`);
  return p;
}

export interface CniRun {
  code: number;
  stdout: string;
  stderr: string;
}

export class CniDriver {
  readonly binDir: string;
  readonly confDir: string;
  private readonly pods: Netns[] = [];
  private readonly nets = new Set<string>();

  /** `dir`: a scratch directory; `agentSocket`: the agent's attachment API. */
  constructor(
    dir: string,
    readonly agentSocket: string,
    readonly cnitool = cnitoolPath(),
  ) {
    this.binDir = join(dir, 'cni-bin');
    this.confDir = join(dir, 'cni-conf');
    mkdirSync(this.binDir, { recursive: true });
    mkdirSync(this.confDir, { recursive: true });
  }

  /** `vio4wd cni install` into the test's CNI binary directory (as the chart's init container). */
  async install(): Promise<string> {
    const { stdout } = await execFileP(process.execPath, ['bin/vio4wd.js', 'cni', 'install', '--dir', this.binDir], { encoding: 'utf8', timeout: 120_000 });
    return stdout;
  }

  /** A pod sandbox: a network namespace; cnitool derives the container ID from its path. */
  async pod(label: string): Promise<Netns> {
    const p = await Netns.create(label);
    this.pods.push(p);
    return p;
  }

  /** Writes network config `name` (a .conf file, what Multus hands the delegate). */
  writeConf(name: string, conf: Record<string, unknown>): void {
    this.nets.add(name);
    writeFileSync(join(this.confDir, `${name}.conf`), JSON.stringify({ name, ...conf }));
  }

  /** Writes a raw (possibly broken) network config file. */
  writeRawConf(name: string, text: string): void {
    this.nets.add(name);
    writeFileSync(join(this.confDir, `${name}.conf`), text);
  }

  /** `cnitool <cmd> <net> <netns>`; CAP_ARGS carries runtimeConfig (e.g. {"mac": ...}), CNI_ARGS
   *  what the runtime passes (K8S_POD_NAMESPACE=...;K8S_POD_NAME=...). */
  async run(cmd: 'add' | 'check' | 'del' | 'status' | 'gc', net: string, pod: Netns, o: { capArgs?: Record<string, unknown>; ifName?: string; cniArgs?: string } = {}): Promise<CniRun> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_PATH: this.binDir,
      NETCONFPATH: this.confDir,
      CNI_IFNAME: o.ifName ?? 'net1',
      VIO4WD_AGENT_SOCKET: this.agentSocket,
      ...(o.capArgs ? { CAP_ARGS: JSON.stringify(o.capArgs) } : {}),
      ...(o.cniArgs ? { CNI_ARGS: o.cniArgs } : {}),
    };
    try {
      const { stdout, stderr } = await execFileP(this.cnitool, [cmd, net, `/var/run/netns/${pod.name}`], { env, encoding: 'utf8', timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  }

  /** Removes the pods' namespaces and libcni's cached results of this driver's networks. */
  async cleanup(): Promise<void> {
    for (const p of this.pods.splice(0)) await p.destroy();
    const cache = '/var/lib/cni/results';
    for (const f of existsSync(cache) ? readdirSync(cache) : []) {
      if ([...this.nets].some((n) => f.startsWith(`${n}-cnitool-`))) rmSync(join(cache, f), { force: true });
    }
  }
}
