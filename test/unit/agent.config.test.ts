// Agent configuration: YAML and virtio-forwarder settings files, errors that name the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { ConfigError } from '../../src/agent/config/validate.js';
import { DEFAULT_VFIO_VF_TOKEN, KNOWN_VARIABLES, parseEnvFile } from '../../src/agent/config/envfile.js';
import { parseCpuList } from '../../src/util/identifiers.js';
import { agentConfigSchema } from '../../src/agent/config/schema.js';

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'test.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems.map((p) => `${p.field}: ${p.message}`);
  }
  assert.fail('expected the config to be rejected');
}

test('a YAML config resolves with defaults like virtio-forwarder', () => {
  const { config, format } = parseConfigText(
    `engine:\n  workerCpus: [1]\nrelays:\n  - id: 3\n    vf: { pciAddress: "0000:05:08.1" }\n  - name: tapvf\n    vf: { devargs: "net_tap0,iface=vf0" }\n    vhostUser: { mode: client, socketPath: /run/x.sock }\n    queues: 2\n`,
    'x.yaml',
  );
  assert.equal(format, 'yaml');
  const r = resolveConfig(config);
  assert.equal(r.vhostUser.socketDir, '/tmp/virtio-forwarder');
  assert.equal(r.control.portControl, 'ipc:///var/run/virtio-forwarder/port_control');
  assert.equal(r.relays[0]!.name, 'relay-3');
  assert.deepEqual(r.relays[0]!.vf.pciAddresses, ['0000:05:08.1']);
  assert.equal(r.relays[1]!.vhostUser.mode, 'client');
  assert.equal(r.relays[1]!.queues, 2);
  assert.equal(r.metrics.address, '127.0.0.1:9464');
});

test('the example configs in examples/ are valid', () => {
  for (const f of ['examples/standalone.yaml']) {
    const text = readFileSync(f, 'utf8');
    const { config } = parseConfigText(text, f);
    assert.ok(resolveConfig(config).relays.length > 0, f);
  }
});

test('unknown fields are named with the nearest known one and the line', () => {
  const p = problems('engine:\n  workerCpu: [1]\n');
  assert.deepEqual(p, ['engine.workerCpu: unknown field: did you mean "workerCpus"? (line 2)']);
});

test('bad values name the field, the value and the fix', () => {
  const p = problems('relays:\n  - id: 1\n    vf: { pciAddress: "05:08.1" }\n    queues: 33\n    vhostUser: { mode: bridge }\n');
  assert.ok(p.some((x) => /^relays\[0\]\.vf\.pciAddress: "05:08\.1" has the wrong form \(PCI address in the form 0000:03:00\.1\.\)/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /^relays\[0\]\.queues: 33 must be <= 32 \(Queue pairs, 1\.\.32\.\)/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /^relays\[0\]\.vhostUser\.mode: "bridge" is not allowed: use one of "client", "server"/.test(x)), p.join('\n'));
});

test('a relay without vf is reported as required', () => {
  assert.deepEqual(problems('relays:\n  - id: 1\n'), ['relays[0].vf: is required: add it (line 2)']);
});

test('wrong types and YAML syntax errors are explained', () => {
  assert.deepEqual(problems('engine:\n  workerCpus: one\n'), ['engine.workerCpus: "one" is not an array: write an array here (line 2)']);
  const p = problems('engine:\n  workerCpus: [1\n');
  assert.match(p[0]!, /^line \d+: .*fix the YAML syntax/);
});

test('duplicate relay ids and names are caught when resolving', () => {
  const { config } = parseConfigText('relays:\n  - { id: 1, vf: { devargs: a } }\n  - { id: 1, name: other, vf: { devargs: b } }\n', 'x');
  assert.throws(() => resolveConfig(config), /relays\[1\]\.id: relay id 1 is also used by relays\[0\]/);
});

test('a virtio-forwarder settings file is recognised and every variable is honoured or warned about', () => {
  const text = `# /etc/default/virtioforwarder
VIRTIOFWD_CPU_MASK=0x6
VIRTIOFWD_LOG_LEVEL=6
VIRTIOFWD_IPC_PORT_CONTROL=true
VIRTIOFWD_OVSDB_SOCK_PATH=/usr/local/var/run/openvswitch/db.sock
VIRTIOFWD_JUMBO=y
VIRTIOFWD_MRGBUF=y
VIRTIOFWD_TSO=
VIRTIOFWD_SOCKET_OWNER=libvirt-qemu
VIRTIOFWD_SOCKET_GROUP=kvm
VIRTIOFWD_HUGETLBFS_MOUNT_POINT=/mnt/huge
VIRTIOFWD_STATIC_VFS=(
  0000:05:08.1=1   # first
  "05:08.2=2"
)
VIRTIOFWD_DYNAMIC_SOCKETS=y
VIRTIOFWD_CPU_NIC_SAME_NUMA=n
VIRTIOFWD_VFIO_VF_TOKEN=14d63f20-8445-11ea-8900-1f9ce7d5650d
VIRTIOFWD_CPU_PINS=(1:1,2 2:2)
VIRTIOFWD_PID_DIR=/var/run/virtio-forwarder
VIRTIOFWD_ZMQ_CONFIG_EP=ipc:///var/run/virtio-forwarder/config
VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///var/run/vf/port_control
VIRTIOFWD_ZMQ_STATS_EP=ipc:///var/run/vf/stats
VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc:///var/run/vf/core_sched
VIRTIOFWD_SOCKET_DIR=/tmp/vf
VIRTIOFWD_SOCKET_FNAME_PATTERN='vm%u.sock'
VIRTIOFWD_BINARY=/usr/bin/virtio-forwarder
VIRTIOFWD_MASTER_LCORE=0
export VIRTIOFWD_VHOST_CLIENT="yes"
VIRTIOFWD_ZERO_COPY=1
VIRTIOFWD_BIND_VFIO_PCI=(enp3s0f0:4 0000:05:08.3)
VIO4WD_CORE_SCHED_ENABLE=true
VIO4WD_CORE_SCHED_SENSITIVITY=25
VIO4WD_CORE_SCHED_LOG_LEVEL=6
VIO4WD_CORE_SCHED_POLL_INTERVAL=5
VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT=true
VIO4WD_ZMQ_ALLOW_REMOTE=
`;
  // the test covers the whole list that PROTOCOLS.md gives
  for (const k of KNOWN_VARIABLES) assert.match(text, new RegExp(`\\b${k}=`), k);
  const { format, config, warnings } = parseConfigText(text, '/etc/default/virtioforwarder');
  assert.equal(format, 'virtioforwarder');
  const r = resolveConfig(config);
  assert.deepEqual(r.engine.workerCpus, [1, 2]);
  assert.equal(r.engine.mainCpu, 0);
  assert.equal(r.engine.jumbo, true);
  assert.equal(r.engine.mergeableRxBuffers, true);
  assert.equal(r.engine.tso, false);
  assert.equal(r.engine.hugeDir, '/mnt/huge');
  assert.deepEqual(r.engine.extraEalArgs, ['--vfio-vf-token=14d63f20-8445-11ea-8900-1f9ce7d5650d']);
  assert.equal(r.logLevel, 'info');
  assert.equal(r.vhostUser.owner, 'libvirt-qemu');
  assert.equal(r.vhostUser.group, 'kvm');
  assert.equal(r.vhostUser.socketDir, '/tmp/vf');
  assert.equal(r.vhostUser.socketNamePattern, 'vm%u.sock');
  assert.equal(r.vhostUser.mode, 'client');
  assert.equal(r.control.portControl, 'ipc:///var/run/vf/port_control');
  assert.equal(r.control.stats, 'ipc:///var/run/vf/stats');
  assert.equal(r.control.coreSched, 'ipc:///var/run/vf/core_sched');
  assert.equal(r.control.config, 'ipc:///var/run/virtio-forwarder/config');
  assert.equal(r.control.dynamicSockets, true);
  assert.equal(r.pidFile, '/var/run/virtio-forwarder/virtio-forwarder.pid');
  assert.deepEqual(r.sriov.bindVfio, ['enp3s0f0:4', '0000:05:08.3']);
  assert.deepEqual(r.relays.map((x) => [x.id, x.vf.pciAddresses?.[0], x.cpus, x.vhostUser.mode]), [
    [1, '0000:05:08.1', [1, 2], 'client'],
    [2, '0000:05:08.2', [2], 'client'],
  ]);
  const named = warnings.map((w) => /^[A-Z0-9_]+/.exec(w)![0]);
  assert.deepEqual(named.sort(), [
    'VIRTIOFWD_CPU_NIC_SAME_NUMA', 'VIRTIOFWD_OVSDB_SOCK_PATH', 'VIRTIOFWD_ZERO_COPY',
  ]);
  // the core scheduler runs in the agent, with the settings vio4wd_core_scheduler takes
  assert.deepEqual(r.coreScheduler, { enabled: true, intervalSeconds: 5, sensitivity: 25, globalNuma: true, minLoad: 0.05, movePinned: true, logLevel: 'info' });
  // "n" switches the option on in virtio-forwarder (any non-empty value does): said so
  assert.match(warnings.find((w) => w.startsWith('VIRTIOFWD_CPU_NIC_SAME_NUMA'))!, /=n: virtio-forwarder switches this on for any non-empty value/);
});

test('settings-file mistakes name the variable and the fix', () => {
  assert.throws(() => parseConfigText('VIRTIOFWD_STATIC_VFS=0000:05:08.1\n', 'f'), /VIRTIOFWD_STATIC_VFS: "0000:05:08.1" is not <PCI>=<relay id>/);
  assert.throws(() => parseConfigText('VIRTIOFWD_CPU_MASK=1,x\n', 'f'), /VIRTIOFWD_CPU_MASK: "x" is not a CPU or range/);
  assert.throws(() => parseConfigText('VIRTIOFWD_SOCKET_FNAME_PATTERN=vm.sock\n', 'f'), /exactly one %u/);
  assert.throws(() => parseConfigText('VIRTIOFWD_STATIC_VFS=(0000:05:08.1=1\n', 'f'), /array VIRTIOFWD_STATIC_VFS is not closed/);
  assert.throws(() => parseConfigText('VIRTIOFWD_LOG_LEVEL=9\n', 'f'), /VIRTIOFWD_LOG_LEVEL: "9" is not a syslog level/);
  const { warnings } = parseConfigText('VIRTIOFWD_CPU_MASKK=1\nVIRTIOFWD_CPU_MASK=1\n', 'f');
  assert.match(warnings[0]!, /^VIRTIOFWD_CPU_MASKK: not a virtio-forwarder setting/);
});

test('shell parsing: quotes, escapes, expansion, append and comments', () => {
  const { vars } = parseEnvFile(`A=1 # c\nB="x \${A} \\"q\\""\nC='$A'\nD=(a 'b c' "$A")\nD+=(z)\nE=a\\ b\n`);
  assert.equal(vars.get('A'), '1');
  assert.equal(vars.get('B'), 'x 1 "q"');
  assert.equal(vars.get('C'), '$A');
  assert.deepEqual(vars.get('D'), ['a', 'b c', '1', 'z']);
  assert.equal(vars.get('E'), 'a b');
});

test('CPU lists and masks', () => {
  assert.deepEqual(parseCpuList('1,3-5', 'f'), [1, 3, 4, 5]);
  assert.deepEqual(parseCpuList('0x6', 'f'), [1, 2]);
  assert.throws(() => parseCpuList('0x0', 'f'), /selects no CPU/);
});

test('schemas/agent-config.schema.json is the schema the agent validates with', () => {
  const file = JSON.parse(readFileSync('schemas/agent-config.schema.json', 'utf8')) as unknown;
  assert.deepEqual(file, JSON.parse(JSON.stringify(agentConfigSchema)));
});

// The value forms virtio-forwarder's shipped settings file documents (startup/virtioforwarder in
// its sources), each with the meaning its start script and daemon give it.
const resolveEnv = (text: string) => {
  const { config, warnings } = parseConfigText(text, '/etc/default/virtioforwarder');
  return { r: resolveConfig(config), warnings };
};

test('the shipped settings file as it comes: its defaults and what vio4wd says about them', () => {
  const shipped = [
    'VIRTIOFWD_CPU_MASK=1,2', 'VIRTIOFWD_LOG_LEVEL=6', 'VIRTIOFWD_IPC_PORT_CONTROL=y', 'VIRTIOFWD_OVSDB_SOCK_PATH=',
    'VIRTIOFWD_JUMBO=y', 'VIRTIOFWD_MRGBUF=y', 'VIRTIOFWD_TSO=', 'VIRTIOFWD_SOCKET_OWNER=', 'VIRTIOFWD_SOCKET_GROUP=',
    'VIRTIOFWD_HUGETLBFS_MOUNT_POINT=/dev/hugepages', 'VIRTIOFWD_STATIC_VFS=', 'VIRTIOFWD_DYNAMIC_SOCKETS=',
    'VIRTIOFWD_CPU_NIC_SAME_NUMA=', 'VIRTIOFWD_VFIO_VF_TOKEN=', 'VIO4WD_CORE_SCHED_ENABLE=true',
    'VIO4WD_CORE_SCHED_SENSITIVITY=', 'VIO4WD_CORE_SCHED_LOG_LEVEL=6', 'VIO4WD_CORE_SCHED_POLL_INTERVAL=',
    'VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT=', 'VIRTIOFWD_CPU_PINS=', 'VIRTIOFWD_PID_DIR=/var/run', 'VIRTIOFWD_ZMQ_CONFIG_EP=',
    'VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///var/run/virtio-forwarder/port_control',
    'VIRTIOFWD_ZMQ_STATS_EP=ipc:///var/run/virtio-forwarder/stats',
    'VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc:///var/run/virtio-forwarder/core_sched', 'VIRTIOFWD_SOCKET_DIR=/tmp/virtio-forwarder',
    'VIRTIOFWD_SOCKET_FNAME_PATTERN=', 'VIRTIOFWD_BINARY=/usr/bin/virtio-forwarder', 'VIRTIOFWD_MASTER_LCORE=',
    'VIRTIOFWD_VHOST_CLIENT=y', 'VIRTIOFWD_ZERO_COPY=', 'VIRTIOFWD_BIND_VFIO_PCI=', 'VIO4WD_ZMQ_ALLOW_REMOTE=',
  ].join('\n');
  for (const k of KNOWN_VARIABLES) assert.match(shipped, new RegExp(`^${k}=`, 'm'), k);
  const { r, warnings } = resolveEnv(shipped);
  assert.deepEqual(r.engine.workerCpus, [1, 2]);
  assert.equal(r.engine.jumbo, true);
  assert.equal(r.engine.mergeableRxBuffers, true);
  assert.equal(r.engine.tso, false);
  assert.equal(r.engine.hugeDir, '/dev/hugepages');
  assert.equal(r.engine.extraEalArgs, undefined, 'an empty token passes no --vfio-vf-token');
  assert.equal(r.engine.mainCpu, undefined);
  assert.equal(r.vhostUser.mode, 'client');
  assert.equal(r.vhostUser.owner, undefined, 'empty owner: the process user');
  assert.equal(r.vhostUser.socketDir, '/tmp/virtio-forwarder');
  assert.equal(r.vhostUser.socketNamePattern, 'virtio-forwarder%u.sock');
  assert.equal(r.pidFile, '/var/run/virtio-forwarder.pid');
  assert.equal(r.control.portControl, 'ipc:///var/run/virtio-forwarder/port_control');
  assert.equal(r.control.stats, 'ipc:///var/run/virtio-forwarder/stats');
  assert.equal(r.control.coreSched, 'ipc:///var/run/virtio-forwarder/core_sched');
  assert.equal(r.control.config ?? '', '', 'an empty config endpoint is not served');
  // VIRTIOFWD_DYNAMIC_SOCKETS empty: the sockets of relay ids 0..63 are made at start (in client
  // mode, as here: dialled), each a relay without a VF; ADD_SOCK is refused as there is no free relay
  assert.equal(r.control.dynamicSockets, false, 'no ADD_SOCK with the sockets made at start');
  assert.equal(r.vhostUser.precreateSockets, 64);
  assert.deepEqual(r.relays.map((x) => [x.id, x.name, x.vf, x.vhostUser.mode]), Array.from({ length: 64 }, (_, id) => [id, `relay-${id}`, { none: true }, 'client']));
  assert.deepEqual(r.cpuPins, {});
  assert.deepEqual(r.sriov.bindVfio, []);
  assert.deepEqual(warnings, []);
  // VIRTIOFWD_DYNAMIC_SOCKETS set: no socket at start, ADD_SOCK/REMOVE_SOCK on; a static VF
  // takes its relay id's socket, and left out, the variable keeps vio4wd's default (none made)
  const dyn = resolveEnv(shipped.replace('VIRTIOFWD_DYNAMIC_SOCKETS=', 'VIRTIOFWD_DYNAMIC_SOCKETS=y')).r;
  assert.equal(dyn.control.dynamicSockets, true);
  assert.deepEqual(dyn.relays, []);
  const stat = resolveEnv(shipped.replace('VIRTIOFWD_STATIC_VFS=', 'VIRTIOFWD_STATIC_VFS=0000:05:08.1=3')).r;
  assert.equal(stat.relays.length, 64);
  assert.deepEqual(stat.relays.filter((x) => !x.vf.none).map((x) => [x.id, x.vf.pciAddresses]), [[3, ['0000:05:08.1']]]);
  assert.equal(resolveEnv(shipped.replace('VIRTIOFWD_DYNAMIC_SOCKETS=\n', '')).r.relays.length, 0);
  // VIO4WD_CORE_SCHED_ENABLE=true with the other settings empty: vio4wd_core_scheduler's defaults
  assert.deepEqual(r.coreScheduler, { enabled: true, intervalSeconds: 5, sensitivity: 0.25, globalNuma: false, minLoad: 0.05, movePinned: true, logLevel: 'info' });
});

test('VIO4WD_CORE_SCHED_*: every form the settings file documents, read as vio4wd_core_scheduler reads it', () => {
  const sched = (extra: string) => resolveEnv(`VIRTIOFWD_CPU_MASK=1,2\nVIO4WD_CORE_SCHED_ENABLE=true\n${extra}`);
  // anything but "true" leaves the scheduler off (and the endpoint unserved)
  for (const v of ['', 'false', 'yes', '1', 'TRUE']) {
    const { r } = resolveEnv(`VIRTIOFWD_CPU_MASK=1,2\nVIO4WD_CORE_SCHED_ENABLE=${v}\nVIO4WD_CORE_SCHED_SENSITIVITY=0.5\n`);
    assert.equal(r.coreScheduler.enabled, false, `ENABLE=${v}`);
    assert.equal(r.control.coreSched, '', `ENABLE=${v}`);
  }
  assert.equal(resolveEnv('VIRTIOFWD_CPU_MASK=1,2\n').r.coreScheduler.enabled, false, 'off unless asked for');
  assert.equal(sched('VIO4WD_CORE_SCHED_SENSITIVITY=0.1\n').r.coreScheduler.sensitivity, 0.1);
  assert.equal(sched('VIO4WD_CORE_SCHED_SENSITIVITY=0\n').r.coreScheduler.sensitivity, 0);
  const neg = sched('VIO4WD_CORE_SCHED_SENSITIVITY=-1\n');
  assert.equal(neg.r.coreScheduler.sensitivity, 0.25);
  assert.match(neg.warnings.join('\n'), /VIO4WD_CORE_SCHED_SENSITIVITY=-1: below 0; the default 0.25 is used/);
  assert.equal(sched('VIO4WD_CORE_SCHED_POLL_INTERVAL=0.5\n').r.coreScheduler.intervalSeconds, 0.5);
  assert.equal(sched('VIO4WD_CORE_SCHED_POLL_INTERVAL=10\n').r.coreScheduler.intervalSeconds, 10);
  assert.equal(sched('VIO4WD_CORE_SCHED_POLL_INTERVAL=0\n').r.coreScheduler.intervalSeconds, 5, '0 = the default, as in the daemon');
  assert.equal(sched('VIO4WD_CORE_SCHED_LOG_LEVEL=7\n').r.coreScheduler.logLevel, 'debug');
  assert.equal(sched('VIO4WD_CORE_SCHED_LOG_LEVEL=3\n').r.coreScheduler.logLevel, 'error');
  const lvl = sched('VIO4WD_CORE_SCHED_LOG_LEVEL=9\n');
  assert.equal(lvl.r.coreScheduler.logLevel, 'debug');
  assert.match(lvl.warnings.join('\n'), /VIO4WD_CORE_SCHED_LOG_LEVEL=9: not a syslog level 0..7/);
  assert.equal(sched('VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT=\n').r.coreScheduler.globalNuma, false);
  assert.equal(sched('VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT=true\n').r.coreScheduler.globalNuma, true);
  assert.equal(sched('VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT=1\n').r.coreScheduler.globalNuma, true);
  // virtio-forwarder's scheduler overrides pinnings: so does vio4wd's with a settings file
  assert.equal(sched('').r.coreScheduler.movePinned, true);
  // text that is no number stops the agent, naming the variable
  assert.throws(() => sched('VIO4WD_CORE_SCHED_SENSITIVITY=high\n'), /VIO4WD_CORE_SCHED_SENSITIVITY.*"high" is not a number/);
  assert.throws(() => sched('VIO4WD_CORE_SCHED_POLL_INTERVAL=5s\n'), /VIO4WD_CORE_SCHED_POLL_INTERVAL.*"5s" is not a number/);
  assert.throws(() => sched('VIO4WD_CORE_SCHED_POLL_INTERVAL=-2\n'), /VIO4WD_CORE_SCHED_POLL_INTERVAL.*below 0/);
});

test('coreScheduler in a YAML config: defaults, and bad values named', () => {
  const r = resolveConfig(parseConfigText('engine:\n  workerCpus: [1, 2]\ncoreScheduler:\n  enabled: true\n', 'x.yaml').config);
  assert.deepEqual(r.coreScheduler, { enabled: true, intervalSeconds: 5, sensitivity: 0.25, globalNuma: false, minLoad: 0.05, movePinned: false });
  assert.match(problems('coreScheduler:\n  intervalSeconds: 0\n').join('\n'), /coreScheduler\.intervalSeconds/);
  assert.match(problems('coreScheduler:\n  sensitivity: -1\n').join('\n'), /coreScheduler\.sensitivity/);
  assert.match(problems('coreScheduler:\n  interval: 5\n').join('\n'), /coreScheduler/);
});

test('sriov.vfLimits: default untagged only and spoof checking on; ids and ranges; a bad range is named', () => {
  assert.deepEqual(resolveConfig(parseConfigText('engine:\n  workerCpus: [1]\n', 'x.yaml').config).sriov.vfLimits, { allowedVlans: ['0'], allowSpoofchkOff: false });
  const r = resolveConfig(parseConfigText('sriov:\n  vfLimits:\n    allowedVlans: [0, 100, "200-299"]\n    allowSpoofchkOff: true\n', 'x.yaml').config);
  assert.deepEqual(r.sriov.vfLimits, { allowedVlans: [0, 100, '200-299'], allowSpoofchkOff: true });
  assert.throws(
    () => resolveConfig(parseConfigText('sriov:\n  vfLimits:\n    allowedVlans: ["300-200"]\n', 'x.yaml').config),
    (e: unknown) => e instanceof ConfigError && /sriov\.vfLimits\.allowedVlans: sriov\.vfLimits\.allowedVlans\[0\]: "300-200" is not a VLAN id or range: write 0 \(untagged\), 1\.\.4094, or "100-199"/.test(e.message),
  );
  assert.match(problems('sriov:\n  vfLimits:\n    allowedVlans: [5000]\n').join('\n'), /sriov\.vfLimits\.allowedVlans\[0\]/);
  assert.match(problems('sriov:\n  vfLimits:\n    allowTrust: true\n').join('\n'), /sriov\.vfLimits\.allowTrust: unknown field/);
});

test('VIRTIOFWD_CPU_PINS: array, one-item array, scalar, ";"-separated and empty forms', () => {
  const pins = (v: string) => resolveEnv(`VIRTIOFWD_CPU_MASK=1,2\nVIRTIOFWD_CPU_PINS=${v}\n`).r.cpuPins;
  assert.deepEqual(pins('(0:1,1 1:1,2 2:2,1)'), { 0: [1, 1], 1: [1, 2], 2: [2, 1] });
  assert.deepEqual(pins('(0:1,1)'), { 0: [1, 1] });
  assert.deepEqual(pins('0:1,1'), { 0: [1, 1] });
  assert.deepEqual(pins('"0:1;3:2,1"'), { 0: [1], 3: [2, 1] });
  assert.deepEqual(pins(''), {});
  // the pins reach the static relays they name
  const { r } = resolveEnv('VIRTIOFWD_CPU_MASK=0x6\nVIRTIOFWD_STATIC_VFS=0000:05:08.1=0\nVIRTIOFWD_CPU_PINS=0:2,1\n');
  assert.deepEqual(r.relays[0]!.cpus, [2, 1]);
  // virtio-forwarder refuses a pin to a CPU that runs no worker; so does vio4wd, saying why
  assert.throws(() => resolveEnv('VIRTIOFWD_CPU_MASK=1,2\nVIRTIOFWD_CPU_PINS=0:3\n'), /VIRTIOFWD_CPU_PINS: relay 0: CPU 3 runs no worker \(VIRTIOFWD_CPU_MASK gives 1,2\)/);
  assert.throws(() => resolveEnv('VIRTIOFWD_CPU_PINS=0-1\n'), /VIRTIOFWD_CPU_PINS: "0-1" is not <relay>:<cpu>\[,<cpu>\]/);
});

test('VIRTIOFWD_STATIC_VFS: array, one-item array, scalar and empty forms', () => {
  const vfs = (v: string) => resolveEnv(`VIRTIOFWD_STATIC_VFS=${v}\n`).r.relays.map((x) => [x.id, x.vf.pciAddresses?.[0]]);
  assert.deepEqual(vfs('(0000:05:08.1=1 0000:05:08.2=2 0000:05:08.3=3)'), [[1, '0000:05:08.1'], [2, '0000:05:08.2'], [3, '0000:05:08.3']]);
  assert.deepEqual(vfs('(0000:05:08.1=1)'), [[1, '0000:05:08.1']]);
  assert.deepEqual(vfs('0000:05:08.1=1'), [[1, '0000:05:08.1']]);
  assert.deepEqual(vfs(''), []);
});

test('VIRTIOFWD_VFIO_VF_TOKEN: empty passes none, 0 the default token, a UUID itself', () => {
  const eal = (v: string) => resolveEnv(`VIRTIOFWD_VFIO_VF_TOKEN=${v}\n`).r.engine.extraEalArgs;
  assert.equal(eal(''), undefined);
  assert.deepEqual(eal('0'), [`--vfio-vf-token=${DEFAULT_VFIO_VF_TOKEN}`]);
  assert.equal(DEFAULT_VFIO_VF_TOKEN, '14d63f20-8445-11ea-8900-1f9ce7d5650d');
  assert.deepEqual(eal('A1B2C3D4-0000-1111-2222-333344445555'), ['--vfio-vf-token=a1b2c3d4-0000-1111-2222-333344445555']);
  assert.throws(() => eal('yes'), /VIRTIOFWD_VFIO_VF_TOKEN: "yes" is not a UUID: leave it empty \(no token\), write 0/);
});

test('port control: ZeroMQ whenever its endpoint is set; empty IPC switch and endpoint mean OVSDB', () => {
  // an empty VIRTIOFWD_IPC_PORT_CONTROL with the endpoint set: virtio-forwarder still serves
  // ZeroMQ port control (the endpoint wins), and stats are unaffected
  let { r, warnings } = resolveEnv('VIRTIOFWD_IPC_PORT_CONTROL=\nVIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///run/v/pc\nVIRTIOFWD_ZMQ_STATS_EP=ipc:///run/v/st\n');
  assert.equal(r.control.enabled, true);
  assert.equal(r.control.portControl, 'ipc:///run/v/pc');
  assert.equal(r.control.stats, 'ipc:///run/v/st');
  assert.deepEqual(warnings, []);
  // both empty: virtio-forwarder monitors OVSDB; stats stay on
  ({ r, warnings } = resolveEnv('VIRTIOFWD_IPC_PORT_CONTROL=\nVIRTIOFWD_ZMQ_PORT_CONTROL_EP=\nVIRTIOFWD_OVSDB_SOCK_PATH=/run/ovs/db.sock\n'));
  assert.equal(r.control.portControl, '');
  assert.equal(r.control.stats, 'ipc:///var/run/virtio-forwarder/stats');
  assert.equal(r.control.ovsdb, '/run/ovs/db.sock', 'port control through the OVSDB monitor');
  assert.deepEqual(warnings, []);
  assert.equal(resolveEnv('VIRTIOFWD_IPC_PORT_CONTROL=\nVIRTIOFWD_ZMQ_PORT_CONTROL_EP=\n').r.control.ovsdb, '/usr/local/var/run/openvswitch/db.sock');
  // the IPC switch without an endpoint: virtio-forwarder's file IPC, which vio4wd lacks
  ({ r, warnings } = resolveEnv('VIRTIOFWD_IPC_PORT_CONTROL=y\nVIRTIOFWD_ZMQ_PORT_CONTROL_EP=\n'));
  assert.equal(r.control.portControl, '');
  assert.match(warnings.join('\n'), /file-based IPC, which vio4wd does not have/);
  // an empty stats endpoint: no stats, unless the core scheduler is on (it needs them)
  assert.equal(resolveEnv('VIRTIOFWD_ZMQ_STATS_EP=\nVIO4WD_CORE_SCHED_ENABLE=false\n').r.control.stats, '');
  assert.equal(resolveEnv('VIRTIOFWD_ZMQ_STATS_EP=\nVIO4WD_CORE_SCHED_ENABLE=false\n').r.control.coreSched, '');
  assert.equal(resolveEnv('VIRTIOFWD_ZMQ_STATS_EP=\nVIO4WD_CORE_SCHED_ENABLE=true\n').r.control.stats, 'ipc:///var/run/virtio-forwarder/stats');
});

test('switches: any non-empty value is on, as in the start script; a "no" says so', () => {
  let { r, warnings } = resolveEnv('VIRTIOFWD_JUMBO=y\nVIRTIOFWD_MRGBUF=\nVIRTIOFWD_TSO=1\nVIRTIOFWD_VHOST_CLIENT=\n');
  assert.equal(r.engine.jumbo, true);
  assert.equal(r.engine.mergeableRxBuffers, false);
  assert.equal(r.engine.tso, true);
  assert.equal(r.vhostUser.mode, 'server');
  assert.deepEqual(warnings, []);
  ({ r, warnings } = resolveEnv('VIRTIOFWD_JUMBO=no\n'));
  assert.equal(r.engine.jumbo, true);
  assert.match(warnings[0]!, /^VIRTIOFWD_JUMBO=no: virtio-forwarder switches this on for any non-empty value, so it is on; leave it empty/);
});

test('VIRTIOFWD_BIND_VFIO_PCI: PCI addresses with or without the domain, netdev and netdev:count', () => {
  assert.deepEqual(resolveEnv('VIRTIOFWD_BIND_VFIO_PCI=ens3,0000:01:02.3,ens4:16\n').r.sriov.bindVfio, ['ens3', '0000:01:02.3', 'ens4:16']);
  assert.deepEqual(resolveEnv('VIRTIOFWD_BIND_VFIO_PCI=01:02.3\n').r.sriov.bindVfio, ['0000:01:02.3']);
  assert.throws(() => resolveEnv('VIRTIOFWD_BIND_VFIO_PCI=ens3,/dev/x\n'), /VIRTIOFWD_BIND_VFIO_PCI: "\/dev\/x" is neither a PCI address/);
});

test('VIRTIOFWD_BINARY and the socket name pattern', () => {
  assert.deepEqual(resolveEnv('VIRTIOFWD_BINARY=/usr/local/bin/virtio-forwarder\n').warnings, []);
  assert.equal(resolveEnv('VIRTIOFWD_SOCKET_FNAME_PATTERN=vm-%u.sock\n').r.vhostUser.socketNamePattern, 'vm-%u.sock');
  assert.throws(() => resolveEnv('VIRTIOFWD_SOCKET_FNAME_PATTERN=vm%u1.sock\n'), /digit after %u/);
  assert.throws(() => resolveEnv('VIRTIOFWD_SOCKET_FNAME_PATTERN=a/vm%u.sock\n'), /no \//);
});

test('devicePlugin.namespaceCheck: on with kubernetes, asks kubelet\'s pod-resources socket, refuses a config without one', () => {
  const k8s = (extra: string) => resolveConfig(parseConfigText(`engine:\n  workerCpus: [1]\nkubernetes:\n  enabled: true\n${extra}`, 'x.yaml').config);
  assert.equal(k8s('').devicePlugin.podResourcesSocket, '/var/lib/kubelet/pod-resources/kubelet.sock');
  assert.equal(k8s('cni:\n  podResourcesSocket: /k/pr.sock\n').devicePlugin.podResourcesSocket, '/k/pr.sock');
  assert.equal(k8s('devicePlugin:\n  podResourcesSocket: /k/dp.sock\n').devicePlugin.podResourcesSocket, '/k/dp.sock');
  assert.equal(k8s('devicePlugin:\n  namespaceCheck: false\n').devicePlugin.podResourcesSocket, undefined);
  assert.throws(() => k8s('metrics:\n  podResourcesSocket: ""\ncni:\n  allocationCheck: false\n'), /devicePlugin\.podResourcesSocket.*devicePlugin\.namespaceCheck: false/s);
  // standalone: no kubelet, no check
  assert.equal(resolveConfig(parseConfigText('engine:\n  workerCpus: [1]\ndevicePlugin:\n  enabled: true\n', 'x.yaml').config).devicePlugin.podResourcesSocket, undefined);
});

test('a ZeroMQ endpoint beyond loopback is refused unless control.allowRemote says so', () => {
  const cfg = (extra: string) => resolveConfig(parseConfigText(`engine:\n  workerCpus: [1]\ncontrol:\n${extra}`, 'x.yaml').config);
  for (const a of ['tcp://*:5555', 'tcp://0.0.0.0:5555', 'tcp://eth0:5555', 'tcp://10.0.0.1:5555', 'tcp://[::]:5555']) {
    assert.throws(() => cfg(`  portControl: "${a}"\n`), (e: Error) => /control\.portControl/.test(e.message) && e.message.includes(a) && /control the relays as root.*control\.allowRemote: true/s.test(e.message), a);
  }
  assert.throws(() => cfg('  stats: "tcp://*:5556"\n'), /control\.stats.*read every relay/s);
  assert.equal(cfg('  portControl: "tcp://*:5555"\n  allowRemote: true\n').control.portControl, 'tcp://*:5555');
  for (const a of ['tcp://127.0.0.1:5555', 'tcp://localhost:5555', 'tcp://[::1]:5555', 'ipc:///run/x/port_control', 'ipc://@abstract']) {
    assert.equal(cfg(`  portControl: "${a}"\n`).control.portControl, a);
  }
  // off: not served, nothing to refuse
  assert.equal(cfg('  enabled: false\n  portControl: "tcp://*:5555"\n').control.enabled, false);
});

test('virtio-forwarder settings: a tcp:// endpoint beyond loopback needs VIO4WD_ZMQ_ALLOW_REMOTE', () => {
  const env = (extra: string) => resolveConfig(parseConfigText(`VIRTIOFWD_CPU_MASK=1\nVIRTIOFWD_ZMQ_PORT_CONTROL_EP=tcp://0.0.0.0:5555\n${extra}`, '/etc/default/virtioforwarder').config);
  assert.throws(() => env(''), /control\.portControl.*VIO4WD_ZMQ_ALLOW_REMOTE=y/s);
  assert.equal(env('VIO4WD_ZMQ_ALLOW_REMOTE=y\n').control.portControl, 'tcp://0.0.0.0:5555');
});

test('kubernetes.nosymfollowSocketRoot: off unless asked (the chart asks)', () => {
  const k8s = (extra: string) => resolveConfig(parseConfigText(`engine:\n  workerCpus: [1]\nkubernetes:\n  enabled: true\n${extra}`, 'x.yaml').config);
  assert.equal(k8s('').kubernetes.nosymfollowSocketRoot, false);
  assert.equal(k8s('  nosymfollowSocketRoot: true\n').kubernetes.nosymfollowSocketRoot, true);
});
