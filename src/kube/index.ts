// The Kubernetes layer shared by the node agent and the cluster operator: clients, CRD schemas
// and types, informers, the work queue, events and leader election.
export * from './client.js';
export * from './crd-schemas.js';
export * from './crds.js';
export * from './events.js';
export * from './informer.js';
export * from './leader.js';
export * from './node-conditions.js';
export * from './node-lease.js';
export * from './resources.js';
export * from '../util/workqueue.js';
export * from './workqueue-metrics.js';
