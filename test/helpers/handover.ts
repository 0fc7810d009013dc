// The stand of the upgrade handover's guest test and benchmark (test/integration/handover.qemu,
// bench/handover.ts): a QEMU guest with one NIC per vhost-user socket mode, each on a relay whose
// VF stand-in is net_af_packet on a veth; the peer on the veth's other end pings the guest every
// 10 ms, so a gap in either relay's forwarding shows as a gap in its replies.
import type { Netns } from './netns.js';
import { Guest } from './guest.js';
import { Pinger } from './pinger.js';

export interface StandNic {
  /** the relay's socket mode (QEMU takes the other role) */
  mode: 'client' | 'server';
  vf: string;
  peer: string;
  peerIp: string;
  guestIp: string;
  mac: string;
}

export const STAND_NICS: readonly StandNic[] = [
  { mode: 'client', vf: 'vfc', peer: 'upc', peerIp: '10.0.12.1', guestIp: '10.0.12.2', mac: '52:54:00:b0:00:12' },
  { mode: 'server', vf: 'vfs', peer: 'ups', peerIp: '10.0.11.1', guestIp: '10.0.11.2', mac: '52:54:00:b0:00:11' },
];

/** The relay of a stand NIC, as a config relay (standalone) or a VirtioRelay spec's fields. */
export function standRelay(n: StandNic): { vf: { devargs: string }; mac: string } {
  return { vf: { devargs: `net_af_packet_${n.vf},iface=${n.vf}` }, mac: n.mac };
}

/** The veths and the peer's neighbour entries (no ARP timer in a measured gap). */
export async function prepareStand(ns: Netns): Promise<void> {
  for (const n of STAND_NICS) {
    await ns.addVeth(n.vf, n.peer);
    await ns.addAddress(n.peer, `${n.peerIp}/24`);
    await ns.ip('neigh', 'replace', n.guestIp, 'lladdr', n.mac, 'dev', n.peer, 'nud', 'permanent');
  }
}

export interface Stand {
  guest: Guest;
  /** one pinger per NIC, by relay mode */
  pings: Record<'client' | 'server', Pinger>;
  stop(): Promise<void>;
}

/**
 * Boots the guest on the relays' sockets (they must exist or be about to: QEMU waits for a
 * relay that listens) and starts pinging it through both relays. `qemuArgs` are added to QEMU's
 * command line (e.g. trace events: bench/handover.ts --trace).
 */
export async function startStand(ns: Netns, sockets: Record<'client' | 'server', string>, name = 'handover', qemuArgs: string[] = []): Promise<Stand> {
  const guest = await Guest.start({
    name,
    netns: ns,
    nics: STAND_NICS.map((n) => ({ socketPath: sockets[n.mode], mode: n.mode === 'client' ? ('server' as const) : ('client' as const), ip: `${n.guestIp}/24`, mac: n.mac })),
    job: { kind: 'shell' },
    extraArgs: qemuArgs,
  });
  try {
    await guest.waitForReady(240_000);
  } catch (err) {
    await guest.stop();
    throw err;
  }
  const pings = {
    client: new Pinger(ns.name, STAND_NICS.find((n) => n.mode === 'client')!.guestIp),
    server: new Pinger(ns.name, STAND_NICS.find((n) => n.mode === 'server')!.guestIp),
  };
  return {
    guest,
    pings,
    async stop() {
      pings.client.stop();
      pings.server.stop();
      await guest.stop();
    },
  };
}

/** What killOnFirstRelease needs of an agent process (test/helpers/agent.ts). */
interface Watched {
  proc: { child: { stdout: NodeJS.ReadableStream | null; stderr: NodeJS.ReadableStream | null; kill(signal: NodeJS.Signals): boolean } };
}

/**
 * SIGKILLs `victim` the moment `watched` (the old agent) logs that it released its first relay
 * to a new agent: a handover interrupted midway. Rejects when that does not happen in time.
 */
export function killOnFirstRelease(watched: Watched, victim: Watched, timeoutMs = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const streams = [watched.proc.child.stdout, watched.proc.child.stderr].filter((s): s is NodeJS.ReadableStream => s !== null);
    const done = (): void => {
      clearTimeout(timer);
      for (const s of streams) s.off('data', onData);
    };
    const onData = (d: Buffer | string): void => {
      if (!String(d).includes('"msg":"handover: relay released"')) return;
      done();
      victim.proc.child.kill('SIGKILL');
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`the old agent released no relay within ${timeoutMs} ms`));
    }, timeoutMs);
    for (const s of streams) s.on('data', onData);
  });
}
