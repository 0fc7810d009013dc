// `npm run soak`: the long soak, outside `npm test` (test/e2e/stack.test.ts runs a short one).
// The whole stack as in the story (test/helpers/e2e.ts), one guest pinging through relay vm1
// every 0.2 s, and VirtioRelays created, scheduled, attached, advertised, allocated and deleted
// in a loop for VIO4WD_SOAK_SECONDS (default 600). Must hold: no ping lost on the untouched
// relay, the agent's memory flat (RSS at most 2 MiB more at the end than after the warm-up, over
// the full 10 minutes: issue #20's target; JS heap after GC), no file descriptor, socket,
// device-info file, interface or device left behind.
//
// Run it alone on the machine's cores (no test run or other DPDK poller meanwhile): npm run soak
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Guest } from '../helpers/guest.js';
import { E2eEnv, NAMESPACE, vhostUserNics } from '../helpers/e2e.js';
import { RSS_GROWTH_LIMIT_KB, SOAK_TARGET_KB, runSoak } from './soak-run.js';

const SECONDS = Number(process.env.VIO4WD_SOAK_SECONDS ?? 600);
const FIX = 'test/fixtures/kubevirt';
const MAC = '52:54:00:e2:50:01';

let env: E2eEnv | undefined;
let guest: Guest | undefined;

before(async () => {
  env = await E2eEnv.start();
  await env.ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await env.ns.addVeth('vf1', 'up1');
  await env.ns.addAddress('up1', '10.0.1.1/24');
  for (const dev of ['vf1', 'up1']) await env.ns.exec('ethtool', ['-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
}, { timeout: 180_000 });

after(async () => {
  await guest?.stop();
  await env?.stop();
}, { timeout: 120_000 });

test(`soak: relays created and deleted for ${SECONDS} s while a guest pings through another`, { timeout: (SECONDS + 300) * 1000 }, async (t) => {
  const e = env!;
  await e.apply(e.relayObject('vm1', { vf: { devargs: 'net_af_packet_vm1,iface=vf1,qpairs=2' }, queues: 2, mac: MAC }));
  await e.waitReady('vm1');
  const id = `${NAMESPACE}.vm1`;
  await e.waitDevices(`${id} Healthy`, (d) => d.get(id) === 'Healthy');
  const pod = await e.allocate([id]);
  await e.writeNetworkInfo(pod, [['net1', id]]);
  const vmi = JSON.parse(readFileSync(join(FIX, 'vmi-one.json'), 'utf8')) as { spec: { domain: { cpu: Record<string, unknown>; devices: { networkInterfaceMultiqueue?: boolean; interfaces: { name: string; macAddress?: string }[] } } } };
  vmi.spec.domain.cpu.cores = 2;
  vmi.spec.domain.devices.networkInterfaceMultiqueue = true;
  vmi.spec.domain.devices.interfaces.find((i) => i.name === 'net1')!.macAddress = MAC;
  const domain = await e.defineDomain(readFileSync(join(FIX, 'domain-one-first.xml'), 'utf8'), vmi);
  const [nic] = vhostUserNics(domain, (p) => pod.hostPath(p));
  assert.ok(nic, 'the sidecar added the vhost-user NIC');
  guest = await Guest.start({ name: 'soak', netns: e.ns, nics: [{ socketPath: nic.socketPath, mode: nic.mode, queues: nic.queues, mac: nic.mac, ip: '10.0.1.2/24' }], job: { kind: 'shell' } });
  await guest.waitForReady();
  const r = await runSoak(e, guest, {
    durationMs: SECONDS * 1000,
    peer: '10.0.1.1',
    // the target holds for the full 10 minutes; a shorter run keeps the suite's bound
    rssGrowthLimitKb: SECONDS >= 600 ? SOAK_TARGET_KB : RSS_GROWTH_LIMIT_KB,
    report: (m) => {
      t.diagnostic(m);
      console.log(`# soak: ${m}`);
    },
  });
  r.assertHealthy();
});
