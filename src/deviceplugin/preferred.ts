// GetPreferredAllocation as a pure choice: fill the request from as few NUMA nodes as possible,
// always keeping the devices kubelet must include.
import { DevicePluginError } from './errors.js';

export interface PreferredRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
}

const byId = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

/**
 * Returns `size` device IDs: all of mustInclude, then devices from the NUMA nodes mustInclude
 * already uses, then from the fewest further nodes (the smallest node that can take the rest,
 * else the largest), then devices without a known NUMA node. Deterministic: ties go to the
 * lower node number and the lower device ID.
 */
export function preferredAllocation(req: PreferredRequest, numaOf: (id: string) => number | undefined): string[] {
  if (!Number.isInteger(req.size) || req.size < 1) {
    throw new DevicePluginError('EINVAL', `allocation_size is ${req.size}: it must be at least 1`);
  }
  const result = [...new Set(req.mustInclude)];
  if (result.length >= req.size) return result;
  const chosen = new Set(result);
  const node = (id: string): number => {
    const n = numaOf(id);
    return n === undefined || n < 0 ? -1 : n;
  };
  const free = new Map<number, string[]>();
  for (const id of [...new Set(req.available)].sort(byId)) {
    if (chosen.has(id)) continue;
    const n = node(id);
    free.set(n, [...(free.get(n) ?? []), id]);
  }
  // nodes already used, ranked by how many must-include devices sit there
  const mustPerNode = new Map<number, number>();
  for (const id of result) {
    const n = node(id);
    if (n >= 0) mustPerNode.set(n, (mustPerNode.get(n) ?? 0) + 1);
  }
  const used = [...mustPerNode.keys()].sort((a, b) => (mustPerNode.get(b) ?? 0) - (mustPerNode.get(a) ?? 0) || a - b);
  const take = (n: number): void => {
    const ids = free.get(n) ?? [];
    while (ids.length > 0 && result.length < req.size) result.push(ids.shift() as string);
  };
  for (const n of used) take(n);
  while (result.length < req.size) {
    const need = req.size - result.length;
    const open = [...free.entries()].filter(([n, ids]) => n >= 0 && ids.length > 0 && !used.includes(n));
    if (open.length === 0) break;
    const fits = open.filter(([, ids]) => ids.length >= need).sort((a, b) => a[1].length - b[1].length || a[0] - b[0]);
    const pick = fits[0] ?? open.sort((a, b) => b[1].length - a[1].length || a[0] - b[0])[0];
    if (!pick) break;
    used.push(pick[0]);
    take(pick[0]);
  }
  take(-1);
  return result;
}
