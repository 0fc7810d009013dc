// The pool policy in placement: a relay goes only to a node where the agent's own check
// (src/policy decide: a VirtioForwarderPolicy defines the relay's pool on that node, lists the
// relay's namespace, and its limits hold) lets it run, and there takes only a VF of its pool.
// The agent checks again on the node (the operator cannot see the agent's own allowances).
import { decide, vfInPool } from '../policy/index.js';
import type { VirtioForwarderPolicy, VirtioRelaySpec } from '../kube/index.js';
import type { PlacementNode } from './placement.js';

export interface PolicyFiltered {
  /** The nodes, with the ones the policy denies marked unavailable and the others' VFs narrowed
   *  to the relay's pool. */
  nodes: PlacementNode[];
  /** One node's full denial, for the relay's status when no node is left. */
  denial?: string;
}

/** The field a denial names ("spec.resourceName: ..." -> spec.resourceName). */
function fieldOf(message: string): string {
  const i = message.indexOf(':');
  return i > 0 ? message.slice(0, i) : 'policy';
}

export function applyPoolPolicy(
  nodes: readonly PlacementNode[],
  relay: { namespace: string; spec: VirtioRelaySpec },
  policies: readonly VirtioForwarderPolicy[],
  labelsOf: (node: string) => Record<string, string>,
): PolicyFiltered {
  // the nodes' own virtual-device allowances are in their agent configs: leave those to the agent
  const anyVirtual = { virtualDevices: [...new Set(policies.flatMap((p) => p.spec?.vfs?.virtualDevices ?? []))] };
  let denial: string | undefined;
  let denialNode = '';
  const out = nodes.map((node): PlacementNode => {
    if (node.unavailable) return node;
    const d = decide(relay, policies, labelsOf(node.name), anyVirtual);
    if (!d.allowed) {
      // the most telling one: a node where the pool exists but a limit or a device says no
      if (!denial || (denial.startsWith('spec.resourceName') && fieldOf(d.message) !== 'spec.resourceName')) {
        denial = d.message;
        denialNode = node.name;
      }
      return { ...node, unavailable: `denied by pool policy (${fieldOf(d.message)})` };
    }
    if (relay.spec.vf.devargs !== undefined) return node;
    return { ...node, vfs: node.vfs.filter((vf) => vfInPool(vf, d.pool)) };
  });
  return { nodes: out, ...(denial ? { denial: `node ${denialNode}: ${denial.replace(' on this node', '')}` } : {}) };
}
