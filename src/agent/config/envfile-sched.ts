// VIO4WD_CORE_SCHED_* of virtio-forwarder's settings file: its vio4wd_core_scheduler daemon's
// settings, read into the agent's coreScheduler block.
import type { AgentConfig } from './schema.js';
import { ValidationError } from '../../util/errors.js';

/**
 * VIO4WD_CORE_SCHED_*: the settings of virtio-forwarder's vio4wd_core_scheduler, which runs inside
 * the agent when VIO4WD_CORE_SCHED_ENABLE=true. Each value is read as that daemon reads its
 * flag: empty (or 0) keeps the default, an out-of-range sensitivity or log level falls back to
 * the default with a warning, text that is no number stops the agent with the variable named.
 */
export function coreSchedSettings(
  get: (k: string) => string | undefined,
  flag: (k: string) => boolean | undefined,
  warnings: string[],
): NonNullable<AgentConfig['coreScheduler']> | undefined {
  if (get('VIO4WD_CORE_SCHED_ENABLE') !== 'true') return undefined;
  const num = (k: string): number | undefined => {
    const x = get(k);
    if (!x) return undefined;
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(x)) throw new ValidationError(k, `"${x}" is not a number: leave it empty for the default, or write e.g. ${k.endsWith('INTERVAL') ? '5 (seconds)' : k.endsWith('LEVEL') ? '6 (0..7)' : '0.25'}`);
    return Number(x);
  };
  // virtio-forwarder's scheduler overrides every pinning (its settings file says so)
  const out: NonNullable<AgentConfig['coreScheduler']> = { enabled: true, movePinned: true };
  const sens = num('VIO4WD_CORE_SCHED_SENSITIVITY');
  if (sens !== undefined && sens < 0) warnings.push(`VIO4WD_CORE_SCHED_SENSITIVITY=${sens}: below 0; the default 0.25 is used, as by virtio-forwarder`);
  else if (sens !== undefined) out.sensitivity = sens;
  const interval = num('VIO4WD_CORE_SCHED_POLL_INTERVAL');
  if (interval !== undefined && interval < 0) throw new ValidationError('VIO4WD_CORE_SCHED_POLL_INTERVAL', `${interval} is below 0: give the seconds between evaluations, e.g. 5, or leave it empty`);
  if (interval) out.intervalSeconds = interval;
  const level = num('VIO4WD_CORE_SCHED_LOG_LEVEL');
  if (level) {
    const l = Number.isInteger(level) && level >= 0 && level <= 7 ? level : 7;
    if (l !== level) warnings.push(`VIO4WD_CORE_SCHED_LOG_LEVEL=${level}: not a syslog level 0..7; 7 (debug) is used, as by virtio-forwarder`);
    out.logLevel = l <= 3 ? 'error' : l === 4 ? 'warn' : l <= 6 ? 'info' : 'debug';
  }
  if (flag('VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT')) out.globalNuma = true;
  return out;
}
