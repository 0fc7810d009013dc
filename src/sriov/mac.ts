// A VF's MAC, set and read through its PF with iproute2 (`ip link set <pf> vf <n> mac <mac>`),
// so that the VF carries the VM's MAC: the relay rewrites nothing.
import { execFile } from 'node:child_process';
import { VioError, errorCode } from '../util/errors.js';
import { parseMac } from '../util/identifiers.js';
import type { CommandResult, CommandRunner } from './types.js';

/** Runs a program without a shell (execFile); a non-zero exit resolves with its code. */
export const execRunner: CommandRunner = (cmd, args) =>
  new Promise<CommandResult>((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && errorCode(err) !== undefined) {
        // ENOENT and friends: the program itself could not run
        reject(new VioError('ENOCMD', `cannot run ${cmd}: ${err.message}; install iproute2 (apt-get install iproute2)`, { cause: err }));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });

export interface IpOptions {
  /** Default: execRunner. */
  runner?: CommandRunner;
  /** The ip program (default "ip"). */
  ip?: string;
}

interface IpLinkJson {
  ifname?: string;
  vfinfo_list?: { vf?: number; address?: string; mac?: string }[];
}

/** The PF's VF table as iproute2 reports it: VF index -> MAC (all-zero MACs, i.e. unset, left out). */
export async function readPfVfMacs(pfName: string, opts: IpOptions = {}): Promise<Map<number, string>> {
  const table = await readVfTable(pfName, opts);
  for (const [vf, mac] of table) if (mac === '00:00:00:00:00:00') table.delete(vf);
  return table;
}

async function readVfTable(pfName: string, opts: IpOptions): Promise<Map<number, string>> {
  const runner = opts.runner ?? execRunner;
  const ip = opts.ip ?? 'ip';
  const r = await runner(ip, ['-j', 'link', 'show', 'dev', pfName]);
  if (r.code !== 0) {
    throw new VioError('EIPLINK', `${ip} -j link show dev ${pfName} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  let links: IpLinkJson[];
  try {
    links = JSON.parse(r.stdout) as IpLinkJson[];
  } catch (err) {
    throw new VioError('EIPLINK', `${ip} -j link show dev ${pfName} printed no JSON; is iproute2 older than 4.14?`, { cause: err });
  }
  const macs = new Map<number, string>();
  for (const info of links[0]?.vfinfo_list ?? []) {
    const mac = (info.address ?? info.mac)?.toLowerCase();
    if (typeof info.vf === 'number' && mac) macs.set(info.vf, mac);
  }
  return macs;
}

export interface SetVfMacResult {
  mac: string;
  /** True when the PF's VF table read back shows the new MAC; false when it lists no such VF. */
  verified: boolean;
}

/**
 * Sets VF `vfIndex` of PF `pfName` to `mac` and reads the PF's VF table back to check it.
 * A VF bound to a kernel driver may need its netdev restarted to use the new MAC; a VF bound
 * to vfio-pci takes it when DPDK starts the port.
 */
export async function setVfMac(pfName: string, vfIndex: number, mac: string, opts: IpOptions = {}): Promise<SetVfMacResult> {
  const want = parseMac(mac, 'mac');
  if (!Number.isInteger(vfIndex) || vfIndex < 0) {
    throw new VioError('EINVAL', `vfIndex: ${vfIndex} is not a VF index; give the N of the PF's virtfnN link (0, 1, ...)`);
  }
  const runner = opts.runner ?? execRunner;
  const ip = opts.ip ?? 'ip';
  const args = ['link', 'set', 'dev', pfName, 'vf', String(vfIndex), 'mac', want];
  const r = await runner(ip, args);
  if (r.code !== 0) {
    const why = r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`;
    throw new VioError('EVFMAC', `${ip} ${args.join(' ')} failed: ${why}; ${hint(why, pfName, vfIndex)}`);
  }
  const got = (await readVfTable(pfName, { runner, ip })).get(vfIndex);
  if (got === undefined) return { mac: want, verified: false };
  if (got !== want) {
    throw new VioError('EVFMAC', `VF ${vfIndex} of ${pfName} still has MAC ${got} after setting ${want}; the PF driver refused it silently (check dmesg)`);
  }
  return { mac: want, verified: true };
}

function hint(why: string, pf: string, vf: number): string {
  if (/Cannot find device|does not exist/i.test(why)) return `there is no interface ${pf}: check the PF name with \`ip link\``;
  if (/Operation not supported/i.test(why)) return `${pf} does not support VF settings: is it an SR-IOV PF with VFs (cat /sys/class/net/${pf}/device/sriov_numvfs)?`;
  if (/Invalid argument/i.test(why)) return `${pf} has no VF ${vf}, or refuses this MAC: check sriov_numvfs and the MAC`;
  if (/Operation not permitted/i.test(why)) return 'setting a VF MAC needs CAP_NET_ADMIN: run as root';
  return 'see the message above and dmesg';
}
