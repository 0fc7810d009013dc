// `vio4wd -C1,2 --nodaemon=log_syslog ...`: virtio-forwarder's own command line, as its
// systemd unit and start script pass it (VIRTIOFWD_BINARY=vio4wd), runs the agent with the
// same meaning.
import { envToConfig } from '../../agent/config/envfile.js';
import { resolveConfig } from '../../agent/config/load.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { assertConfig } from '../../agent/config/validate.js';
import { parseVirtioForwarderArgs } from '../../agent/config/vfwd-args.js';
import { VERSION } from '../../util/version.js';
import { runAgent } from './agent.js';

export async function runVirtioForwarderCommandLine(args: readonly string[]): Promise<void> {
  const cl = parseVirtioForwarderArgs(args);
  if (cl.version) {
    // virtio-forwarder prints "Virtio-forwarder version X (DPDK)"; scripts grep for the word
    process.stdout.write(`Virtio-forwarder version ${VERSION} (vio4wd, DPDK 22.11)\n`);
    return;
  }
  const { config, warnings } = envToConfig(cl.env);
  const merged = structuredClone(config) as AgentConfig & Record<string, Record<string, unknown>>;
  if (Object.keys(cl.standIns).length) merged.sriov = { ...merged.sriov, standIns: cl.standIns };
  if (cl.metricsAddress) merged.metrics = { ...merged.metrics, address: cl.metricsAddress };
  if (cl.logLevel) merged.log = { level: cl.logLevel as 'info' };
  assertConfig(merged, 'command line');
  await runAgent(resolveConfig(merged), warnings, false);
}
