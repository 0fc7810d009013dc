// What a user meets when the host's hugepages are not set up: the agent names the setting and the
// fix instead of DPDK's bare errno. A configured hugepage directory that is no hugetlbfs mount is
// refused before DPDK starts (checked against this machine's real /proc/mounts too), and a failed
// DPDK start is followed by the doctor's findings about the host's hugepages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hugeDirProblem, hugepageProblems, hugetlbfsMounts } from '../../src/doctor/index.js';
import { explainEngineFailure, startEngine } from '../../src/agent/engine-start.js';
import { EngineError } from '../../src/engine/index.js';
import { SysfsTree } from '../helpers/sysfs.js';

type T = { after: (fn: () => void) => void };

function host(t: T, opts: { mounts: string[]; free: number }): SysfsTree {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  tree.numaNode(0, { cpus: '0-3', hugepages: { total: opts.free, free: opts.free } });
  tree.file('sys/devices/system/node/has_memory', '0');
  tree.mounts(...opts.mounts);
  tree.file('proc/meminfo', 'MemTotal: 65536000 kB\nHugepagesize:       2048 kB\n');
  return tree;
}

const HUGETLBFS = 'nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0';

test('a hugeDir that is no hugetlbfs mount names the setting and the mount there is', (t) => {
  const tree = host(t, { mounts: [HUGETLBFS, 'tmpfs /tmp tmpfs rw 0 0'], free: 1024 });
  assert.equal(hugeDirProblem(undefined, 'engine.hugeDir', tree.root), undefined);
  assert.equal(hugeDirProblem('/dev/hugepages/', 'engine.hugeDir', tree.root), undefined);
  assert.equal(hugeDirProblem('/dev/hugepages/vio4wd', 'engine.hugeDir', tree.root), undefined, 'a sub-directory of the mount (DPDK takes those)');
  assert.notEqual(hugeDirProblem('/dev/hugepagesX', 'engine.hugeDir', tree.root), undefined);
  assert.equal(
    hugeDirProblem('/mnt/huge', 'engine.hugeDir', tree.root),
    '/mnt/huge is not in a hugetlbfs mount; hugetlbfs is mounted at /dev/hugepages: set engine.hugeDir to it, or leave it out (the engine finds the mount)',
  );
  const none = host(t, { mounts: ['tmpfs /tmp tmpfs rw 0 0'], free: 1024 });
  assert.match(hugeDirProblem('/mnt/huge', 'engine.hugeDir', none.root) ?? '', /no hugetlbfs is mounted: mount -t hugetlbfs -o pagesize=2M nodev \/dev\/hugepages/);
  const noProc = SysfsTree.create();
  t.after(() => noProc.cleanup());
  assert.equal(hugeDirProblem('/mnt/huge', 'engine.hugeDir', noProc.root), undefined, 'no /proc to read: nothing said');
});

test('a failed DPDK start is explained by the host: no mount, no free hugepages, each with its fix', (t) => {
  const eal = new EngineError('EIO', 'rte_eal_init failed: Permission denied (DPDK\'s log above names the cause)');
  const bare = host(t, { mounts: [], free: 0 });
  const explained = explainEngineFailure(eal, {}, bare.root) as EngineError;
  assert.equal(explained.code, 'EIO');
  assert.match(explained.message, /^rte_eal_init failed: Permission denied .*; on this host: no hugetlbfs mounted: DPDK cannot map hugepages \(fix: mkdir -p \/dev\/hugepages && mount -t hugetlbfs/);
  assert.match(explained.message, /0 of 0 2 MiB hugepages free .*\(fix: reserve more: echo \d+ > \/sys\/devices\/system\/node\/node0\/hugepages\/hugepages-2048kB\/nr_hugepages/);
  assert.match(explained.message, /`vio4wd doctor` checks the rest$/);
  // in-memory EAL needs no mount, only the pages
  assert.deepEqual(hugepageProblems({ root: bare.root, inMemory: true }).map((p) => p.slice(0, 40)), [hugepageProblems({ root: bare.root })[1]!.slice(0, 40)]);
  // a host with its hugepages in order leaves the error as it was, and so do other errors
  const good = host(t, { mounts: [HUGETLBFS], free: 1024 });
  assert.equal(explainEngineFailure(eal, {}, good.root), eal);
  const inval = new EngineError('EINVAL', 'workerCpus: bad');
  assert.equal(explainEngineFailure(inval, {}, bare.root), inval);
});

test('the agent refuses a hugeDir that is not this machine\'s hugetlbfs mount before DPDK starts', async () => {
  const mounts = hugetlbfsMounts();
  assert.ok(mounts.length > 0, 'scripts/bootstrap mounts hugetlbfs');
  const err = await startEngine({ workerCpus: [1], hugeDir: '/var/empty-not-hugetlbfs' }, {}).then(
    () => assert.fail('the engine started on a directory that is no hugetlbfs'),
    (e: unknown) => e as Error & { code?: string; field?: string },
  );
  assert.equal(err.code, 'EINVAL');
  assert.equal(err.field, 'engine.hugeDir (VIRTIOFWD_HUGETLBFS_MOUNT_POINT, -H)');
  assert.match(err.message, new RegExp(`/var/empty-not-hugetlbfs is not in a hugetlbfs mount; hugetlbfs is mounted at ${mounts[0]!.replace(/[/.]/g, '\\$&')}`));
});
