// The node's view of the pool policy: the admin's VirtioForwarderPolicies and this node's
// labels (both watched), and what the agent's own config allows. The node reconciler asks it
// about every VirtioRelay before anything of the relay touches the host.
import type { KubernetesListObject, V1Node } from '@kubernetes/client-node';
import type { Logger } from '../../util/log.js';
import { ResilientInformer, type KubeClients, type VirtioForwarderPolicy, type VirtioForwarderPolicyClient, type VirtioRelaySpec } from '../../kube/index.js';
import { decide, type NodeAllowances, type PolicyDecision } from '../../policy/index.js';

export interface NodePolicyOptions {
  clients: KubeClients;
  policies: VirtioForwarderPolicyClient;
  nodeName: string;
  allowances: NodeAllowances;
  logger: Logger;
  /** Called when a policy or the node's labels change: every relay is checked again. */
  onChange: () => void;
}

export class NodePolicy {
  private readonly policies: ResilientInformer<VirtioForwarderPolicy>;
  private readonly node: ResilientInformer<V1Node>;

  constructor(private readonly o: NodePolicyOptions) {
    const log = o.logger.child({ component: 'node-policy' });
    const changed = (): void => o.onChange();
    this.policies = o.policies.informer({
      logger: log,
      onAdd: changed,
      onUpdate: changed,
      onDelete: changed,
    });
    // only this node's object, for its labels (nodeSelector); a node without one has no labels
    const fieldSelector = `metadata.name=${o.nodeName}`;
    this.node = new ResilientInformer<V1Node>(o.clients.kc, {
      path: '/api/v1/nodes',
      list: async () => (await o.clients.core.listNode({ fieldSelector })) as KubernetesListObject<V1Node>,
      fieldSelector,
      logger: log,
      onAdd: changed,
      onUpdate: changed,
      onDelete: changed,
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.policies.start(), this.node.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.policies.stop(), this.node.stop()]);
  }

  get hasSynced(): boolean {
    return this.policies.hasSynced && this.node.hasSynced;
  }

  /** The VirtioForwarderPolicies as last seen. */
  policyObjects(): VirtioForwarderPolicy[] {
    return this.policies.list();
  }

  nodeLabels(): Record<string, string> {
    return this.node.get(this.o.nodeName)?.metadata?.labels ?? {};
  }

  decide(namespace: string, spec: VirtioRelaySpec): PolicyDecision {
    return decide({ namespace, spec }, this.policies.list(), this.nodeLabels(), this.o.allowances);
  }
}
