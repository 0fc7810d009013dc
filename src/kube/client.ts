// Client construction and error helpers over @kubernetes/client-node, shared by the node
// agent's reconciler and the cluster operator.
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Agent } from 'node:http';
import { errorMessage } from '../util/errors.js';

export interface KubeClients {
  kc: KubeConfig;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
}

type AgentFactory = (cluster: { server?: string } | null, options: Record<string, unknown>) => Agent;

/**
 * client-node (1.x) makes a new https.Agent for every request, so every call opens a new TCP
 * connection and does a full TLS handshake: at a few thousand writes (a node starting 1,000
 * relays, a cluster of 100 agents) that handshake is most of the client's and the apiserver's
 * CPU. One keep-alive agent per set of TLS options (they change only when the client cert or
 * CA files do) keeps connections open and reused, as client-go does. It also keeps the RSS
 * flat: each new connection's OpenSSL context is native memory, freed only when V8 collects the
 * small JS objects holding it (issue #20, bench/RESULTS.md K).
 */
function reuseConnections(kc: KubeConfig): void {
  const target = kc as unknown as { createAgent: AgentFactory };
  const make = target.createAgent.bind(kc);
  const agents = new Map<string, Agent>();
  target.createAgent = (cluster, options) => {
    const key = JSON.stringify([cluster?.server, options]);
    let agent = agents.get(key);
    if (!agent) {
      // at rest at most two idle connections stay open (a burst opens more, closed after): the
      // agent's file descriptors stay flat under relay churn (the soak counts them)
      agent = make(cluster, { ...options, keepAlive: true, maxFreeSockets: 2, scheduling: 'lifo' });
      // the agent of older TLS material (a rotated cert) is dropped: requests still on it finish,
      // its idle connections close when the apiserver closes them
      if (agents.size >= 8) agents.delete(agents.keys().next().value as string);
      agents.set(key, agent);
    }
    return agent;
  };
}

/** From a kubeconfig file, else in-cluster (service account), else ~/.kube/config. */
export function kubeClients(kubeconfig?: string): KubeClients {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  reuseConnections(kc);
  return {
    kc,
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
  };
}

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** HTTP status of a client-node error (ApiException has `code`), or undefined. */
export function httpStatus(err: unknown): number | undefined {
  const c = (err as { code?: unknown; statusCode?: unknown })?.code ?? (err as { statusCode?: unknown })?.statusCode;
  return typeof c === 'number' ? c : undefined;
}

/** A short, readable message from a client-node error (the apiserver's Status message if any). */
export function kubeErrorMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const s = JSON.parse(body) as { message?: string };
      if (s.message) return s.message;
    } catch {
      /* not JSON */
    }
  } else if (body && typeof body === 'object' && 'message' in body) {
    return String((body as { message: unknown }).message);
  }
  return errorMessage(err);
}
