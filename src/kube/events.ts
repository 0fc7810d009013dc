// core/v1 Events on objects, for what a user wants to see in `kubectl describe`.
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { kubeErrorMessage } from './client.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

/** Records a core/v1 Event on an object; failures are logged, never thrown. */
export async function recordEvent(
  core: CoreV1Api,
  log: Logger,
  component: string,
  host: string,
  target: EventTarget,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
): Promise<void> {
  const now = new Date();
  const namespace = target.namespace ?? 'default';
  try {
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${target.name}.`, namespace },
        involvedObject: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          name: target.name,
          namespace: target.namespace,
          uid: target.uid,
          resourceVersion: target.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component, host },
        reportingComponent: `vio4wd.io/${component}`,
        reportingInstance: host,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  } catch (err) {
    log.debug({ reason, err: kubeErrorMessage(err) }, 'could not record event');
  }
}
