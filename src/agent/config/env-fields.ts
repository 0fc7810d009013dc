// Which virtio-forwarder settings variable a config field came from, so that a problem found in a
// settings file names the variable its user wrote (VIRTIOFWD_SOCKET_DIR), not only the YAML
// field (vhostUser.socketDir) it became.
const FIELDS: readonly [RegExp, string][] = [
  [/^engine\.workerCpus\b/, 'VIRTIOFWD_CPU_MASK'],
  [/^engine\.mainCpu\b/, 'VIRTIOFWD_MASTER_LCORE'],
  [/^engine\.hugeDir\b/, 'VIRTIOFWD_HUGETLBFS_MOUNT_POINT'],
  [/^engine\.extraEalArgs\b/, 'VIRTIOFWD_VFIO_VF_TOKEN'],
  [/^vhostUser\.owner\b/, 'VIRTIOFWD_SOCKET_OWNER'],
  [/^vhostUser\.group\b/, 'VIRTIOFWD_SOCKET_GROUP'],
  [/^vhostUser\.socketDir\b/, 'VIRTIOFWD_SOCKET_DIR'],
  [/^vhostUser\.socketNamePattern\b/, 'VIRTIOFWD_SOCKET_FNAME_PATTERN'],
  [/^control\.portControl\b/, 'VIRTIOFWD_ZMQ_PORT_CONTROL_EP'],
  [/^control\.stats\b/, 'VIRTIOFWD_ZMQ_STATS_EP'],
  [/^control\.coreSched\b/, 'VIRTIOFWD_ZMQ_CORE_SCHED_EP'],
  [/^control\.config\b/, 'VIRTIOFWD_ZMQ_CONFIG_EP'],
  [/^control\.ovsdb\b/, 'VIRTIOFWD_OVSDB_SOCK_PATH'],
  [/^pidFile\b/, 'VIRTIOFWD_PID_DIR'],
  [/^relays\b/, 'VIRTIOFWD_STATIC_VFS'],
  [/^cpuPins\b/, 'VIRTIOFWD_CPU_PINS'],
  [/^sriov\.bindVfio\b/, 'VIRTIOFWD_BIND_VFIO_PCI'],
  [/^coreScheduler\b/, 'VIO4WD_CORE_SCHED_*'],
];

/** `VARIABLE (field)` for a field a settings variable sets, else the field. */
export function envFieldName(field: string): string {
  const v = FIELDS.find(([re]) => re.test(field))?.[1];
  return v ? `${v} (${field})` : field;
}
