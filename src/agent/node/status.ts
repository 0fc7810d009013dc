// A relay's RelayStatus as a VirtioRelay's status, and the comparison that spares the apiserver
// writes that change nothing.
import type { RelayStatus } from '../../relay/types.js';
import type { VirtioRelay, VirtioRelayStatus } from '../../kube/index.js';

export function toCrStatus(s: RelayStatus, obj: VirtioRelay, nodeName: string): VirtioRelayStatus {
  const ready = s.conditions.find((c) => c.type === 'Ready');
  const gen = obj.metadata.generation;
  const out: VirtioRelayStatus = {
    phase: s.phase,
    message: s.phase === 'Ready' ? 'relay is forwarding' : ready?.message ?? '',
    conditions: s.conditions.map((c) => ({ ...c, ...(gen !== undefined ? { observedGeneration: gen } : {}) })),
    nodeName,
    socketPath: s.socketPath,
    socketMode: s.mode,
    relayId: s.id,
    deviceId: s.name,
    resourceName: s.resourceName,
    numaNode: s.numaNode,
    guestConnected: s.conditions.some((c) => c.type === 'GuestConnected' && c.status === 'True'),
  };
  if (s.pciAddress) out.pciAddress = s.pciAddress;
  if (s.mac) out.mac = s.mac;
  if (gen !== undefined) out.observedGeneration = gen;
  return out;
}

export function failedStatus(obj: VirtioRelay, nodeName: string, reason: string, message: string): VirtioRelayStatus {
  const now = new Date().toISOString();
  const gen = obj.metadata.generation;
  const prev = obj.status?.conditions?.find((c) => c.type === 'Ready');
  return {
    phase: 'Failed',
    message,
    nodeName,
    conditions: [
      {
        type: 'Ready',
        status: 'False',
        reason,
        message,
        lastTransitionTime: prev?.status === 'False' ? prev.lastTransitionTime : now,
        ...(gen !== undefined ? { observedGeneration: gen } : {}),
      },
    ],
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
  };
}

export function sameStatus(a: VirtioRelayStatus | undefined, b: VirtioRelayStatus): boolean {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

function normalize(s: VirtioRelayStatus | undefined): unknown {
  if (!s) return undefined;
  const sorted = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([x], [y]) => x.localeCompare(y)));
  return { ...sorted(s as Record<string, unknown>), conditions: (s.conditions ?? []).map((c) => sorted(c as Record<string, unknown>)) };
}
