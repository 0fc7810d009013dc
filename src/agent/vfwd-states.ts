// virtio-forwarder's internal_state words for the two sides of a relay (its virtio_worker.h
// dpdk_state_t and vio_state_t, printed by virtioforwarder_stats.py), read from vio4wd's relay
// status. Its transitions, and where vio4wd has the same state:
//   VF side:    DPDK_UNINIT -ADD-> DPDK_ADDED (no guest) or DPDK_READY (guest connected);
//               ADDED <-> READY as the guest connects and goes; REMOVE: DPDK_REMOVING1 (while the
//               VF is taken from the workers) -> DPDK_UNINIT
//   guest side: VIRTIO_UNINIT <-> VIRTIO_READY as the guest connects and goes; VIRTIO_REMOVING1
//               while a relay with a guest is torn down (REMOVE_SOCK, shutdown)
// virtio-forwarder's REMOVING2 is its worker's hand-back of the port, which vio4wd's engine does
// inside one call (an RCU grace period) and never shows.
import { Reason } from '../relay/index.js';
import type { RelayStatus } from '../relay/types.js';

export interface VfwdStates {
  vf: 'DPDK_UNINIT' | 'DPDK_ADDED' | 'DPDK_READY' | 'DPDK_REMOVING1';
  vm: 'VIRTIO_UNINIT' | 'VIRTIO_READY' | 'VIRTIO_REMOVING1';
  /** virtio-forwarder's vf2virtio_active: the VF side is ADDED or READY. */
  vfActive: boolean;
  /** virtio2vf_active: the guest side is READY. */
  vmActive: boolean;
  /** RelayState.active: both READY. */
  active: boolean;
}

/** `releasingVf`: a port control REMOVE of this relay's VF is under way. */
export function vfwdStates(s: RelayStatus, releasingVf: boolean): VfwdStates {
  const vfc = s.conditions.find((c) => c.type === 'VFAttached');
  // a VF whose link is down is still the relay's (virtio-forwarder does not look at the link)
  const hasVf = vfc?.status === 'True' || vfc?.reason === Reason.LinkDown;
  const guest = s.conditions.some((c) => c.type === 'GuestConnected' && c.status === 'True');
  const terminating = s.phase === 'Terminating';
  const vf = !hasVf ? 'DPDK_UNINIT' : releasingVf || terminating ? 'DPDK_REMOVING1' : guest ? 'DPDK_READY' : 'DPDK_ADDED';
  const vm = !guest ? 'VIRTIO_UNINIT' : terminating ? 'VIRTIO_REMOVING1' : 'VIRTIO_READY';
  return { vf, vm, vfActive: vf === 'DPDK_ADDED' || vf === 'DPDK_READY', vmActive: vm === 'VIRTIO_READY', active: vf === 'DPDK_READY' && vm === 'VIRTIO_READY' };
}
