// Prometheus metrics and health endpoints of the agent. Values are read at scrape time from
// RelayManager and the engine's counters: nothing here keeps a copy of relay state.
export type { BuildInfo, MetricsSources } from './types.js';
export { AgentMetrics } from './agent-metrics.js';
export { startMetricsServer, type HttpServerHandle, type MetricsAuthorizer, type MetricsServerOptions } from './server.js';
