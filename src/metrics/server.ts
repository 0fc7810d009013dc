// The agent's HTTP(S) endpoints: /metrics (optionally behind an authorizer), /healthz, /readyz.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../util/log.js';
import type { AgentMetrics } from './agent-metrics.js';
import type { MetricsSources } from './types.js';

export interface HttpServerHandle {
  server: Server;
  address: string;
  close(): Promise<void>;
}

/** Who may read /metrics: decides from the request's bearer token (e.g. TokenReview and
 *  SubjectAccessReview against the apiserver, as kube-rbac-proxy does). */
export type MetricsAuthorizer = (bearerToken: string | undefined, req: IncomingMessage) => Promise<{ allowed: true } | { allowed: false; status: 401 | 403 | 500; reason: string }>;

export interface MetricsServerOptions {
  /** When set, /metrics answers only callers it allows; /healthz and /readyz stay open (they
   *  tell nothing about relays). */
  authorize?: MetricsAuthorizer;
  /** Serve HTTPS with this certificate and key (PEM files), so bearer tokens are not sent in clear. */
  tls?: { certFile: string; keyFile: string };
}

/** Serves /metrics, /healthz and /readyz on host:port (loopback by default). */
export async function startMetricsServer(metrics: AgentMetrics, src: MetricsSources, address: string, log: Logger, opts: MetricsServerOptions = {}): Promise<HttpServerHandle> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i) || '127.0.0.1';
  const port = Number(address.slice(i + 1));
  const mlog = log.child({ component: 'metrics' });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/metrics' && opts.authorize) {
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
      opts.authorize(token, req).then(
        (d) => {
          if (d.allowed) return serveMetrics(res);
          res.writeHead(d.status, { 'content-type': 'text/plain', ...(d.status === 401 ? { 'www-authenticate': 'Bearer' } : {}) });
          res.end(`${d.reason}\n`);
        },
        (err: unknown) => {
          mlog.warn({ err: String(err) }, 'metrics authorization failed');
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('authorization failed\n');
        },
      );
      return;
    }
    if (url === '/metrics') {
      serveMetrics(res);
      return;
    }
    route(url, res);
  };
  const serveMetrics = (res: ServerResponse): void => {
    metrics.registry
      .metrics()
      .then((body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      })
      .catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`metrics failed: ${String(err)}\n`);
      });
  };
  const route = (url: string | undefined, res: ServerResponse): void => {
    if (url === '/healthz') {
      const ok = src.engineUp();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'engine down\n');
      return;
    }
    if (url === '/readyz') {
      const ok = src.engineUp() && src.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ready\n' : 'not ready\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /metrics, /healthz or /readyz\n');
  };
  const server: Server = opts.tls
    ? createTlsServer({ cert: await readFile(opts.tls.certFile), key: await readFile(opts.tls.keyFile) }, handler)
    : createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const bound = a && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : address;
  mlog.info({ address: bound, tls: !!opts.tls, authorization: !!opts.authorize }, 'serving /metrics, /healthz, /readyz');
  return {
    server,
    address: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
