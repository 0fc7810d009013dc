// Who may read the agent's /metrics when it listens beyond loopback: the caller's bearer token
// is checked with a TokenReview, then a SubjectAccessReview asks whether that user may `get`
// the non-resource URL /metrics (what kube-rbac-proxy does; grant it with a ClusterRole rule
// `nonResourceURLs: [/metrics], verbs: [get]`). Decisions are cached briefly per token.
import { createHash } from 'node:crypto';
import { AuthenticationV1Api, AuthorizationV1Api, KubeConfig } from '@kubernetes/client-node';
import type { MetricsAuthorizer } from '../metrics/index.js';
import type { Logger } from '../util/log.js';

export interface MetricsAuthOptions {
  kubeconfig?: string;
  logger: Logger;
  /** How long an answer is reused for the same token (default 30 s). */
  cacheMs?: number;
  /** The URL path the SubjectAccessReview names (default /metrics). */
  path?: string;
}

type Decision = Awaited<ReturnType<MetricsAuthorizer>>;

export function kubeMetricsAuthorizer(o: MetricsAuthOptions): MetricsAuthorizer {
  const kc = new KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
  else kc.loadFromDefault();
  const authn = kc.makeApiClient(AuthenticationV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const log = o.logger.child({ component: 'metrics-auth' });
  const cacheMs = o.cacheMs ?? 30_000;
  const path = o.path ?? '/metrics';
  const cache = new Map<string, { at: number; d: Decision }>();

  const decide = async (token: string): Promise<Decision> => {
    const review = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    const st = review.status;
    if (!st?.authenticated || !st.user?.username) return { allowed: false, status: 401, reason: `Unauthorized: ${st?.error ?? 'the token was not accepted by the apiserver'}` };
    const user = st.user;
    const sar = await authz.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          groups: user.groups ?? [],
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          nonResourceAttributes: { path, verb: 'get' },
        },
      },
    });
    if (sar.status?.allowed) return { allowed: true };
    log.info({ user: user.username, reason: sar.status?.reason }, 'metrics scrape refused');
    return { allowed: false, status: 403, reason: `Forbidden: user "${user.username}" may not get ${path} (grant nonResourceURLs: [${path}], verbs: [get])` };
  };

  return async (token) => {
    if (!token) return { allowed: false, status: 401, reason: 'Unauthorized: send a bearer token of a user allowed to get /metrics' };
    const key = createHash('sha256').update(token).digest('hex');
    const hit = cache.get(key);
    const now = Date.now();
    if (hit && now - hit.at < cacheMs) return hit.d;
    const d = await decide(token);
    if (cache.size > 1000) cache.clear();
    cache.set(key, { at: now, d });
    return d;
  };
}
