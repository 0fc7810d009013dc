// virtio-forwarder's command line, as its start script builds it from the settings file: the
// same settings whichever way they come, virtio-forwarder's defaults for what is left out, and
// errors that name the option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { envToConfig } from '../../src/agent/config/envfile.js';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { isVirtioForwarderCommandLine, parseVirtioForwarderArgs } from '../../src/agent/config/vfwd-args.js';

const fromArgs = (args: string[]) => {
  const cl = parseVirtioForwarderArgs(args);
  const { config, warnings } = envToConfig(cl.env);
  return { r: resolveConfig(config), warnings };
};

test('the start script\'s command line for the shipped settings means what the settings file means', () => {
  // what the start script runs for the shipped settings (empty variables leave their option out)
  const args = [
    '-C1,2', '--nodaemon=log_syslog', '-l6', '-p/var/run', '-H/dev/hugepages',
    '--zmq-port-control-ep=ipc:///var/run/virtio-forwarder/port_control',
    '--zmq-stats-ep=ipc:///var/run/virtio-forwarder/stats',
    '--zmq-core-sched-ep=ipc:///var/run/virtio-forwarder/core_sched',
    '--ipc', '--vhost-path=/tmp/virtio-forwarder', '-J', '--enable-mrgbuf', '--vhostuser-client',
    '-c0:1,1', '-c1:2', '-P0000:05:08.1=0', '-P0000:05:08.2=1', '--vfio-vf-token=0',
  ];
  const file = `VIRTIOFWD_CPU_MASK=1,2
VIRTIOFWD_LOG_LEVEL=6
VIRTIOFWD_PID_DIR=/var/run
VIRTIOFWD_HUGETLBFS_MOUNT_POINT=/dev/hugepages
VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///var/run/virtio-forwarder/port_control
VIRTIOFWD_ZMQ_STATS_EP=ipc:///var/run/virtio-forwarder/stats
VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc:///var/run/virtio-forwarder/core_sched
VIO4WD_CORE_SCHED_ENABLE=true
VIRTIOFWD_ZMQ_CONFIG_EP=
VIRTIOFWD_IPC_PORT_CONTROL=y
VIRTIOFWD_SOCKET_DIR=/tmp/virtio-forwarder
VIRTIOFWD_JUMBO=y
VIRTIOFWD_MRGBUF=y
VIRTIOFWD_TSO=
VIRTIOFWD_VHOST_CLIENT=y
VIRTIOFWD_DYNAMIC_SOCKETS=
VIRTIOFWD_CPU_PINS=(0:1,1 1:2)
VIRTIOFWD_STATIC_VFS=(0000:05:08.1=0 0000:05:08.2=1)
VIRTIOFWD_VFIO_VF_TOKEN=0
`;
  const viaArgs = fromArgs(args);
  const viaFile = parseConfigText(file, 'virtioforwarder');
  assert.deepEqual(viaArgs.r, resolveConfig(viaFile.config));
  assert.deepEqual(viaArgs.warnings.sort(), viaFile.warnings.sort());
  // the static VFs, and a socket without a VF for each other relay id up to 63 (no -d)
  assert.deepEqual(viaArgs.r.relays.filter((x) => !x.vf.none).map((x) => [x.id, x.cpus]), [[0, [1, 1]], [1, [2]]]);
  assert.deepEqual(viaArgs.r.relays.filter((x) => x.vf.none).map((x) => x.id), Array.from({ length: 62 }, (_, i) => i + 2));
  assert.equal(fromArgs([...args, '-d']).r.relays.length, 2, '-d (dynamic sockets): none made at start');
  assert.equal(viaArgs.r.engine.jumbo, true);
  assert.equal(viaArgs.r.vhostUser.mode, 'client');
});

test('options given the other getopt ways: separate values, clusters, long names with a space', () => {
  const { r } = fromArgs(['-C', '0x6', '-M', '0', '-JRT', '--vhost-path', '/run/vf', '--vhost-socket', 'vm%u', '-ic', '3:1']);
  assert.deepEqual(r.engine.workerCpus, [1, 2]);
  assert.equal(r.engine.mainCpu, 0);
  assert.equal(r.engine.jumbo, true);
  assert.equal(r.engine.mergeableRxBuffers, true);
  assert.equal(r.engine.tso, true);
  assert.equal(r.vhostUser.socketDir, '/run/vf');
  assert.equal(r.vhostUser.socketNamePattern, 'vm%u');
  assert.equal(r.vhostUser.mode, 'client');
  assert.deepEqual(r.cpuPins, { 3: [1] });
});

test('what virtio-forwarder does without an option: endpoints off, /tmp sockets, OVSDB port control', () => {
  const { r } = fromArgs(['-C1']);
  assert.equal(r.control.portControl, '');
  assert.equal(r.control.stats, '');
  assert.equal(r.control.coreSched, '');
  assert.equal(r.control.config ?? '', '');
  assert.equal(r.vhostUser.socketDir, '/tmp');
  assert.equal(r.vhostUser.mode, 'server');
  assert.equal(r.engine.jumbo, false);
  assert.equal(r.pidFile, '/var/run/virtio-forwarder.pid');
  assert.equal(r.control.ovsdb, '/usr/local/var/run/openvswitch/db.sock', 'no -Z, no -I: the OVSDB monitor');
  assert.equal(fromArgs(['-C1', '-O/run/ovs/db.sock']).r.control.ovsdb, '/run/ovs/db.sock');
  assert.equal(fromArgs(['-C1', '-Z']).r.control.ovsdb, undefined);
  // an endpoint option given bare takes virtio-forwarder's default address
  assert.equal(fromArgs(['-C1', '-Z', '-z']).r.control.portControl, 'ipc:///var/run/virtio-forwarder/port_control');
  assert.equal(fromArgs(['-C1', '-Z', '-z']).r.control.stats, 'ipc:///var/run/virtio-forwarder/stats');
  // the core scheduling endpoint brings stats with it
  assert.equal(fromArgs(['-C1', '-s']).r.control.stats, 'ipc:///var/run/virtio-forwarder/stats');
});

test('mistakes name the option and list the options there are', () => {
  assert.throws(() => parseVirtioForwarderArgs(['-l6']), /-C\/--cpus is required/);
  assert.throws(() => parseVirtioForwarderArgs(['-C1', '--no-such']), /unknown option --no-such \(virtio-forwarder's options: -C\/--cpus <val>/);
  assert.throws(() => parseVirtioForwarderArgs(['-C1', '-q']), /unknown option -q/);
  assert.throws(() => parseVirtioForwarderArgs(['-C1', '--ipc=y']), /--ipc takes no value/);
  assert.throws(() => parseVirtioForwarderArgs(['-C1', '-V']), /-V needs a value/);
  assert.throws(() => parseVirtioForwarderArgs(['-C1', 'extra']), /unexpected argument "extra"/);
  assert.throws(() => parseVirtioForwarderArgs(['-C1', '--vf-stand-in', 'x']), /--vf-stand-in "x" is not <PCI>=<devargs>/);
  assert.throws(() => fromArgs(['-C1', '-c0:2']), /VIRTIOFWD_CPU_PINS: relay 0: CPU 2 runs no worker/);
});

test('vio4wd tells virtio-forwarder\'s command line from its own', () => {
  assert.equal(isVirtioForwarderCommandLine(['-C1,2', '--nodaemon']), true);
  assert.equal(isVirtioForwarderCommandLine(['-v']), true);
  assert.equal(isVirtioForwarderCommandLine(['agent', '--config', 'x']), false);
  assert.equal(isVirtioForwarderCommandLine(['--version']), false);
  assert.equal(isVirtioForwarderCommandLine(['-h']), false);
  assert.equal(isVirtioForwarderCommandLine([]), false);
});

test('the vio4wd command: -v answers like virtio-forwarder, a bad option fails naming it', () => {
  const out = execFileSync('bin/vio4wd.js', ['-v'], { encoding: 'utf8' });
  assert.match(out, /^Virtio-forwarder version \S+ \(vio4wd/);
  let stderr = '';
  let status = 0;
  try {
    execFileSync('bin/vio4wd.js', ['-C1', '--bogus'], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    ({ stderr, status } = e as { stderr: string; status: number });
  }
  assert.equal(status, 1);
  assert.match(stderr, /unknown option --bogus/);
});
