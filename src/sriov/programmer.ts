// Programs a VF's receive filter (MAC, VLAN, spoof check) through its PF: the one place that does
// so, for the agent's CNI attachments and any later allocator (a DRA driver). Two
// implementations share one interface: netlink through iproute2 for real VFs, and a stand-in
// "PF" for test VFs (a veth on a Linux bridge that forwards to the VF only the frames whose
// destination MAC a static FDB entry names, as a VF's embedded switch does).
import { VioError } from '../util/errors.js';
import { parseMac } from '../util/identifiers.js';
import { execRunner } from './mac.js';
import type { CommandRunner } from './types.js';

/** Where a relay's VF is: a real VF (its PF and index), or a DPDK virtual device (devargs). */
export type VfPort = { kind: 'pci'; pciAddress: string; pfName: string; vfIndex: number } | { kind: 'devargs'; devargs: string };

export interface VfSettings {
  /** The MAC the VF receives for (lower case). */
  mac: string;
  /** 802.1Q VLAN the PF tags/strips for the VF; 0 = none. */
  vlan: number;
  /** Spoof check: the PF drops frames the VF sends from another source MAC. */
  spoofchk: boolean;
}

export interface VfProgrammer {
  /** "netlink" or "standin": shown in errors and logs. */
  readonly kind: string;
  /** Writes the settings, then reads them back; throws VioError EVFPROG with the reason and the fix. */
  program(port: VfPort, s: VfSettings): Promise<void>;
  /** The MAC the VF receives for now, undefined when the PF reports none. */
  readMac(port: VfPort): Promise<string | undefined>;
}

export function describePort(p: VfPort): string {
  return p.kind === 'pci' ? `VF ${p.vfIndex} of ${p.pfName} (${p.pciAddress})` : `DPDK virtual device "${p.devargs}"`;
}

function checkSettings(s: VfSettings): VfSettings {
  const mac = parseMac(s.mac, 'mac');
  if (!Number.isInteger(s.vlan) || s.vlan < 0 || s.vlan > 4094) {
    throw new VioError('EINVAL', `vlan: ${String(s.vlan)} is not a VLAN id; give 1..4094, or 0 for none`);
  }
  return { mac, vlan: s.vlan, spoofchk: s.spoofchk };
}

interface IpLinkVf {
  vf?: number;
  address?: string;
  mac?: string;
  vlan_list?: { vlan?: number }[];
  spoofchk?: boolean;
}

/** Real VFs: `ip link set dev <pf> vf <n> mac <mac> vlan <v> spoofchk on|off` (rtnetlink
 *  IFLA_VF_*), read back from `ip -j link show dev <pf>`. Errors carry the kernel's reason. */
export class NetlinkVfProgrammer implements VfProgrammer {
  readonly kind = 'netlink';
  private readonly run: CommandRunner;
  private readonly ip: string;

  constructor(opts: { runner?: CommandRunner; ip?: string } = {}) {
    this.run = opts.runner ?? execRunner;
    this.ip = opts.ip ?? 'ip';
  }

  async program(port: VfPort, settings: VfSettings): Promise<void> {
    const p = this.pci(port);
    const s = checkSettings(settings);
    const args = ['link', 'set', 'dev', p.pfName, 'vf', String(p.vfIndex), 'mac', s.mac, 'vlan', String(s.vlan), 'spoofchk', s.spoofchk ? 'on' : 'off'];
    const r = await this.run(this.ip, args);
    if (r.code !== 0) {
      const why = r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`;
      throw new VioError('EVFPROG', `${this.ip} ${args.join(' ')} failed: ${why}; ${netlinkHint(why, p.pfName, p.vfIndex)}`);
    }
    const vf = await this.readVf(p);
    if (!vf) throw new VioError('EVFPROG', `${p.pfName} lists no VF ${p.vfIndex} after setting it: check sriov_numvfs of ${p.pfName}`);
    const got = (vf.address ?? vf.mac)?.toLowerCase();
    if (got !== s.mac) throw new VioError('EVFPROG', `${describePort(port)} still has MAC ${got ?? 'none'} after setting ${s.mac}: the PF driver refused it silently (check dmesg)`);
  }

  async readMac(port: VfPort): Promise<string | undefined> {
    const vf = await this.readVf(this.pci(port));
    const mac = (vf?.address ?? vf?.mac)?.toLowerCase();
    return mac && mac !== '00:00:00:00:00:00' ? mac : undefined;
  }

  private pci(port: VfPort): Extract<VfPort, { kind: 'pci' }> {
    if (port.kind !== 'pci') {
      throw new VioError(
        'EVFPROG',
        `${describePort(port)} is not an SR-IOV VF, so no PF can program its MAC: give the relay a real VF (vf.pciAddress or vf.selector), ` +
          'or, on a test node whose VFs are stand-ins, set sriov.vfProgrammer: standin in the agent config',
      );
    }
    return port;
  }

  private async readVf(p: Extract<VfPort, { kind: 'pci' }>): Promise<IpLinkVf | undefined> {
    const r = await this.run(this.ip, ['-j', 'link', 'show', 'dev', p.pfName]);
    if (r.code !== 0) {
      const why = r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`;
      throw new VioError('EVFPROG', `${this.ip} -j link show dev ${p.pfName} failed: ${why}; ${netlinkHint(why, p.pfName, p.vfIndex)}`);
    }
    let links: { vfinfo_list?: IpLinkVf[] }[];
    try {
      links = JSON.parse(r.stdout) as typeof links;
    } catch (err) {
      throw new VioError('EVFPROG', `${this.ip} -j link show dev ${p.pfName} printed no JSON; install iproute2 >= 4.14`, { cause: err });
    }
    return links[0]?.vfinfo_list?.find((v) => v.vf === p.vfIndex);
  }
}

function netlinkHint(why: string, pf: string, vf: number): string {
  if (/Cannot find device|does not exist/i.test(why)) return `there is no interface ${pf} in the agent's network namespace: check the PF name with \`ip link\` (the agent needs hostNetwork)`;
  if (/Operation not supported/i.test(why)) return `${pf} does not take VF settings: is it an SR-IOV PF with VFs (cat /sys/class/net/${pf}/device/sriov_numvfs)? \`vio4wd doctor\` checks the node`;
  if (/Invalid argument|out of range/i.test(why)) return `${pf} has no VF ${vf}, or refuses this MAC or VLAN: check sriov_numvfs and the values`;
  if (/Operation not permitted|Permission denied/i.test(why)) return 'programming a VF needs CAP_NET_ADMIN: run the agent as root (the chart does)';
  if (/Device or resource busy/i.test(why)) return `the PF driver of ${pf} refuses to change a VF that is in use by a guest driver or an administrative MAC policy; see dmesg`;
  return 'see the message above and dmesg';
}

interface BridgeFdb {
  mac?: string;
  ifname?: string;
  state?: string;
  flags?: string[];
  master?: string;
}

/**
 * Test VFs: a DPDK virtual device on `iface=<veth>` whose peer is a port of a Linux bridge (the
 * stand-in's PF switch). Programming turns learning and unknown-unicast flooding off on that port
 * and keeps exactly one static FDB entry, the VF's MAC, on it: the port then receives only
 * frames for that MAC (and broadcasts), as a VF does. The entry is sticky: a frame from that MAC
 * arriving on another port (the same VM's MAC on a second VF, e.g. a migration's source and
 * target) must not move it, as learning moves a plain static entry. VLANs are not modelled.
 */
export class StandInVfProgrammer implements VfProgrammer {
  readonly kind = 'standin';
  private readonly run: CommandRunner;

  constructor(opts: { runner?: CommandRunner } = {}) {
    this.run = opts.runner ?? execRunner;
  }

  async program(port: VfPort, settings: VfSettings): Promise<void> {
    const s = checkSettings(settings);
    if (s.vlan !== 0) throw new VioError('EVFPROG', `vlan: the stand-in VF ${describePort(port)} cannot tag VLAN ${s.vlan}; leave vlan out (0) on stand-in VFs`);
    const { bridgePort } = await this.locate(port);
    await this.must('ip', ['link', 'set', 'dev', bridgePort, 'type', 'bridge_slave', 'learning', 'off', 'flood', 'off']);
    for (const mac of await this.staticMacs(bridgePort)) {
      if (mac !== s.mac) await this.must('bridge', ['fdb', 'del', mac, 'dev', bridgePort, 'master', 'static']);
    }
    await this.must('bridge', ['fdb', 'replace', s.mac, 'dev', bridgePort, 'master', 'static', 'sticky']);
    const now = await this.staticMacs(bridgePort);
    if (now.length !== 1 || now[0] !== s.mac) throw new VioError('EVFPROG', `stand-in port ${bridgePort} holds FDB entries [${now.join(', ')}] after setting ${s.mac}`);
  }

  async readMac(port: VfPort): Promise<string | undefined> {
    const { bridgePort } = await this.locate(port);
    return (await this.staticMacs(bridgePort))[0];
  }

  /** The bridge port behind a stand-in VF: the veth peer of the devargs' iface=. */
  private async locate(port: VfPort): Promise<{ iface: string; bridgePort: string }> {
    if (port.kind !== 'devargs') throw new VioError('EVFPROG', `${describePort(port)} is a real VF: the stand-in programmer drives only test VFs; use sriov.vfProgrammer: netlink`);
    const iface = /(?:^|,)iface=([^,]+)/.exec(port.devargs)?.[1];
    if (!iface) throw new VioError('EVFPROG', `${describePort(port)} names no iface=<veth>: a stand-in VF is a net_af_packet device on a veth whose peer is a bridge port`);
    const [link] = await this.json<{ link?: string }[]>('ip', ['-j', 'link', 'show', 'dev', iface]);
    const peer = link?.link;
    if (!peer) throw new VioError('EVFPROG', `${iface} (of ${describePort(port)}) is not a veth with its peer in this namespace: put the peer on the stand-in PF's bridge`);
    const [p] = await this.json<{ master?: string }[]>('ip', ['-j', 'link', 'show', 'dev', peer]);
    if (!p?.master) throw new VioError('EVFPROG', `${peer}, the peer of stand-in VF ${iface}, is on no bridge: \`ip link set ${peer} master <bridge>\``);
    return { iface, bridgePort: peer };
  }

  private async staticMacs(bridgePort: string): Promise<string[]> {
    const all = await this.json<BridgeFdb[]>('bridge', ['-j', 'fdb', 'show', 'dev', bridgePort]);
    // "static" entries are the ones written here; "permanent" ones are the port's own address
    return all.filter((e) => e.state === 'static' && !e.flags?.includes('self') && e.mac).map((e) => e.mac!.toLowerCase());
  }

  private async must(cmd: string, args: string[]): Promise<string> {
    const r = await this.run(cmd, args);
    if (r.code !== 0) throw new VioError('EVFPROG', `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`}`);
    return r.stdout;
  }

  private async json<T>(cmd: string, args: string[]): Promise<T> {
    const out = await this.must(cmd, args);
    try {
      return JSON.parse(out || '[]') as T;
    } catch (err) {
      throw new VioError('EVFPROG', `${cmd} ${args.join(' ')} printed no JSON; install iproute2 >= 4.14`, { cause: err });
    }
  }
}

export function vfProgrammer(kind: 'netlink' | 'standin', opts: { runner?: CommandRunner } = {}): VfProgrammer {
  return kind === 'standin' ? new StandInVfProgrammer(opts) : new NetlinkVfProgrammer(opts);
}
