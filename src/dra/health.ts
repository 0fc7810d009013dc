// The device health kubelet reads from the plugin (DRAResourceHealth.NodeWatchResources, kubelet
// 1.34 with the ResourceHealthStatus feature gate): every device this node publishes or has
// prepared, HEALTHY while its relay is healthy (VF attached, link up, socket ready, engine up),
// UNHEALTHY when not or when a prepared device's relay is gone. The whole list goes out at once,
// again on every relay change and every 10 s: kubelet takes a report older than 30 s for Unknown,
// and writes the health of a pod's devices into its containerStatuses[].allocatedResourcesStatus.
import type { RelayView } from '../relay/types.js';
import type { DeviceHealth, HealthStatus, NodeWatchResourcesResponse } from './proto.js';

/** One device to report, and the relay behind it (made on demand: none until a claim is prepared). */
export interface HealthDevice {
  pool: string;
  device: string;
  relay: string;
  /** a free VF's device: without its relay it is healthy (nothing is made yet) */
  onDemand?: boolean;
}

export interface DeviceHealthOptions {
  relays: RelayView;
  devices: () => HealthDevice[];
  /** resend period (default 10 s) */
  periodMs?: number;
  /** quiet time after a relay change (default 100 ms) */
  debounceMs?: number;
}

export class DeviceHealthReporter {
  constructor(private readonly o: DeviceHealthOptions) {}

  /** The health of every device now. */
  snapshot(): DeviceHealth[] {
    const now = Math.floor(Date.now() / 1000);
    return this.o.devices().map((d) => ({ device: { pool_name: d.pool, device_name: d.device }, health: this.healthOf(d), last_updated_time: now }));
  }

  private healthOf(d: HealthDevice): HealthStatus {
    const s = this.o.relays.get(d.relay);
    if (!s) return d.onDemand ? 'HEALTHY' : 'UNHEALTHY';
    return s.healthy ? 'HEALTHY' : 'UNHEALTHY';
  }

  /** Sends the list now, after every relay change and periodically; the returned function stops it. */
  watch(send: (r: NodeWatchResourcesResponse) => void): () => void {
    let debounce: NodeJS.Timeout | null = null;
    const push = (): void => send({ devices: this.snapshot() });
    const onChange = (): void => {
      if (debounce) return;
      debounce = setTimeout(() => {
        debounce = null;
        push();
      }, this.o.debounceMs ?? 100);
    };
    const timer = setInterval(push, this.o.periodMs ?? 10_000);
    this.o.relays.on('change', onChange);
    this.o.relays.on('removed', onChange);
    push();
    return () => {
      clearInterval(timer);
      if (debounce) clearTimeout(debounce);
      this.o.relays.off('change', onChange);
      this.o.relays.off('removed', onChange);
    };
  }
}
