// Core scheduling endpoint (move relay directions between worker CPUs, list the EAL's worker
// cores) and the config endpoint (the relay -> CPU map), both about worker CPUs.
import type {
  ConfigRequest,
  ConfigResponse,
  CoreSchedRequest,
  CoreSchedResponse,
} from './wire.gen.js';
import {
  ConfigResponse_Status as ConfigStatus,
  CoreSchedRequest_Op as Op,
  CoreSchedResponse_Status as Status,
} from './wire.gen.js';
import type { RelayCpu } from './types.js';
import { endpoint, sourceText, type EndpointHandler, type HandlerContext, type RejectReason } from './handler.js';
import { ControlError, EBADMSG, EIO, EMSGSIZE, errnoOf, ETIMEDOUT } from './errno.js';
import { errorMessage } from '../util/errors.js';

function fail(errno: number, source: string, message: string): CoreSchedResponse {
  return { status: Status.ERROR, error_code: errno, error_code_source: sourceText(source, message), eal_cores: [] };
}

/** Checks an UPDATE's map; throws ControlError naming the entry. */
export function validateCpuMap(map: CoreSchedRequest['relay_cpu_map'], maxRelays: number): RelayCpu[] {
  const entries = map ?? [];
  if (entries.length > maxRelays) {
    throw new ControlError('E2BIG', 'request.relay_cpu_map', `${entries.length} entries; there are at most ${maxRelays} relays`);
  }
  return entries.map((e, i) => {
    const where = `request.relay_cpu_map[${i}]`;
    if (e.relay_number < 0 || e.relay_number >= maxRelays) {
      throw new ControlError('EINVAL', `${where}.relay_number`, `relay number ${e.relay_number} is out of range 0..${maxRelays - 1}`);
    }
    if (e.vf2virtio_cpu < 0) throw new ControlError('EINVAL', `${where}.vf2virtio_cpu`, `CPU ${e.vf2virtio_cpu} is negative`);
    if (e.virtio2vf_cpu < 0) throw new ControlError('EINVAL', `${where}.virtio2vf_cpu`, `CPU ${e.virtio2vf_cpu} is negative`);
    return { relay: e.relay_number, vfToVmCpu: e.vf2virtio_cpu, vmToVfCpu: e.virtio2vf_cpu };
  });
}

export async function serveCoreSched(msg: CoreSchedRequest, ctx: HandlerContext): Promise<CoreSchedResponse> {
  const log = ctx.log.child({ endpoint: 'coreSched' });
  try {
    if (msg.op === Op.UPDATE) {
      const map = validateCpuMap(msg.relay_cpu_map, ctx.maxRelays);
      if (map.length) {
        try {
          await ctx.backend.updateCpuMap(map);
        } catch (err) {
          throw new ControlError(errnoOf(err), 'updateCpuMap', errorMessage(err));
        }
      }
      log.info({ relays: map.length }, 'relay CPUs updated');
      return { status: Status.OK, eal_cores: [] };
    }
    if (msg.op === Op.GET_EAL_CORES) {
      let cores: number[];
      try {
        cores = await ctx.backend.ealCores();
      } catch (err) {
        throw new ControlError(errnoOf(err), 'ealCores', errorMessage(err));
      }
      const valid = cores.filter((c) => Number.isInteger(c) && c >= 0 && c <= 0xffffffff);
      if (valid.length === 0) throw new ControlError('ENODEV', 'ealCores', 'the engine runs no worker cores');
      return { status: Status.OK, eal_cores: valid };
    }
    throw new ControlError('EINVAL', 'request.op', `unknown operation ${msg.op as number}; use UPDATE(0) or GET_EAL_CORES(1)`);
  } catch (err) {
    const e = err instanceof ControlError ? err : new ControlError('EIO', 'coreSched', errorMessage(err));
    log.warn({ op: msg.op, field: e.source, err: e.message }, 'core scheduling request failed');
    return fail(e.errno, e.source, e.message);
  }
}

export async function serveConfig(_msg: ConfigRequest, ctx: HandlerContext): Promise<ConfigResponse> {
  try {
    const map = await ctx.backend.relayCpuMap();
    return {
      status: ConfigStatus.OK,
      relay_cpu_map: map.map((e) => ({ relay_number: e.relay, vf2virtio_cpu: e.vfToVmCpu, virtio2vf_cpu: e.vmToVfCpu })),
    };
  } catch (err) {
    ctx.log.error({ endpoint: 'config', err: errorMessage(err) }, 'reading the relay CPU map failed');
    return { status: ConfigStatus.EBADR, relay_cpu_map: [] };
  }
}

const REJECT_ERRNO: Record<RejectReason, number> = { malformed: EBADMSG, oversized: EMSGSIZE, timeout: ETIMEDOUT, internal: EIO };

export const coreSchedEndpoint: EndpointHandler = endpoint({
  name: 'coreSched',
  request: 'virtioforwarder.CoreSchedRequest',
  response: 'virtioforwarder.CoreSchedResponse',
  // 1024 relays x 3 int32 fit in ~20 KiB.
  maxRequestBytes: 32768,
  serve: serveCoreSched,
  reject: (reason, detail) => fail(REJECT_ERRNO[reason], 'request', detail),
});

export const configEndpoint: EndpointHandler = endpoint({
  name: 'config',
  request: 'virtioforwarder.ConfigRequest',
  response: 'virtioforwarder.ConfigResponse',
  maxRequestBytes: 1024,
  serve: serveConfig,
  reject: () => ({ status: ConfigStatus.EBADR, relay_cpu_map: [] }),
});
