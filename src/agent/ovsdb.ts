// OVSDB port control, as virtio-forwarder's OVSDB monitor does it: an Open_vSwitch Interface
// whose external_ids holds virtio_forwarder=<relay id> is a VF's netdev to relay under that
// number; the Interface going away (or losing the key) takes the VF off the relay. Speaks
// OVSDB's JSON-RPC (RFC 7047) on ovsdb-server's unix socket: one `monitor` of the Interface
// table, its `update` notifications, `echo` answered; reconnects when the server restarts and
// reconciles with the full table it sends again.
import { createConnection, type Socket } from 'node:net';
import { realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { formatPciAddress, pciFields } from '../util/identifiers.js';
import { splitJsonValues } from '../util/json-stream.js';

/** virtio-forwarder's default OVSDB socket. */
export const DEFAULT_OVSDB_SOCKET = '/usr/local/var/run/openvswitch/db.sock';

export interface OvsdbPort {
  /** Relay number (external_ids:virtio_forwarder). */
  id: number;
  /** The Interface's name: the VF's netdev. */
  netdev: string;
}

export interface OvsdbMonitorOptions {
  socketPath: string;
  logger: Logger;
  /** An Interface appeared (or got the key): relay its VF under the number. */
  add(port: OvsdbPort): Promise<void>;
  /** It went away (or lost the key). */
  remove(port: OvsdbPort): Promise<void>;
  /** Delay before reconnecting (default 1000 ms). */
  retryMs?: number;
}

type OvsdbValue = unknown;
interface RowState {
  name?: string;
  external_ids?: OvsdbValue;
}

/** external_ids as OVSDB sends a map: ["map", [[k, v], ...]]. */
function mapValue(v: OvsdbValue, key: string): string | undefined {
  if (!Array.isArray(v) || v[0] !== 'map' || !Array.isArray(v[1])) return undefined;
  const pair = (v[1] as unknown[]).find((p) => Array.isArray(p) && p[0] === key) as [string, unknown] | undefined;
  return typeof pair?.[1] === 'string' ? pair[1] : undefined;
}

/** Splits a stream of concatenated JSON texts (OVSDB sends no delimiter). */
export class JsonStream {
  private buf = '';
  push(chunk: string): unknown[] {
    this.buf += chunk;
    const { values, consumed } = splitJsonValues(this.buf);
    this.buf = this.buf.slice(consumed);
    return values.map((v) => JSON.parse(v) as unknown);
  }
}

export class OvsdbMonitor {
  private readonly log: Logger;
  private sock: Socket | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Interface uuid -> the port it stands for. */
  private ports = new Map<string, OvsdbPort>();
  private chain: Promise<void> = Promise.resolve();
  private connectedOnce = false;

  constructor(private readonly o: OvsdbMonitorOptions) {
    this.log = o.logger.child({ component: 'ovsdb', socket: o.socketPath });
  }

  start(): void {
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.sock?.destroy();
    await this.chain;
  }

  /** Resolves once the port changes seen so far are applied (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  private connect(): void {
    if (this.stopped) return;
    const sock = createConnection(this.o.socketPath);
    this.sock = sock;
    const stream = new JsonStream();
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      this.log.info(this.connectedOnce ? 'reconnected to ovsdb-server' : 'monitoring OVSDB Interfaces with external_ids:virtio_forwarder');
      this.connectedOnce = true;
      const req = { method: 'monitor', id: 'vio4wd-monitor', params: ['Open_vSwitch', 'vio4wd', { Interface: { columns: ['name', 'external_ids'] } }] };
      sock.write(JSON.stringify(req));
    });
    sock.on('data', (d: string) => {
      let msgs: unknown[];
      try {
        msgs = stream.push(d);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'unreadable message from ovsdb-server; reconnecting');
        sock.destroy();
        return;
      }
      for (const m of msgs) this.handle(sock, m as { id?: unknown; method?: string; params?: unknown[]; result?: unknown; error?: unknown });
    });
    sock.on('error', (err) => {
      this.log.debug({ err: errorMessage(err) }, 'ovsdb-server connection failed');
    });
    sock.on('close', () => {
      if (this.stopped) return;
      this.log.warn(`no connection to ovsdb-server at ${this.o.socketPath}; retrying`);
      this.timer = setTimeout(() => this.connect(), this.o.retryMs ?? 1000);
    });
  }

  private handle(sock: Socket, m: { id?: unknown; method?: string; params?: unknown[]; result?: unknown; error?: unknown }): void {
    if (m.method === 'echo') {
      sock.write(JSON.stringify({ id: m.id, result: m.params ?? [], error: null }));
      return;
    }
    if (m.id === 'vio4wd-monitor') {
      if (m.error) {
        this.log.error({ err: m.error }, 'ovsdb-server refused the monitor (no Open_vSwitch database?)');
        return;
      }
      // the whole table: what is not in it any more goes
      this.apply((m.result ?? {}) as Record<string, Record<string, { new?: RowState; old?: RowState }>>, true);
      return;
    }
    if (m.method === 'update' && Array.isArray(m.params)) {
      this.apply((m.params[1] ?? {}) as Record<string, Record<string, { new?: RowState; old?: RowState }>>, false);
    }
  }

  private apply(updates: Record<string, Record<string, { new?: RowState; old?: RowState }>>, full: boolean): void {
    const rows = updates.Interface ?? {};
    const next = full ? new Map<string, OvsdbPort>() : new Map(this.ports);
    for (const [uuid, change] of Object.entries(rows)) {
      const row = change.new;
      if (!row) {
        next.delete(uuid);
        continue;
      }
      const raw = mapValue(row.external_ids, 'virtio_forwarder');
      const id = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
      if (raw !== undefined && id === undefined) this.log.warn({ interface: row.name, value: raw }, 'external_ids:virtio_forwarder is not a relay number; ignored');
      if (id === undefined || !row.name) next.delete(uuid);
      else next.set(uuid, { id, netdev: row.name });
    }
    const before = this.ports;
    this.ports = next;
    for (const [uuid, p] of before) {
      const now = next.get(uuid);
      if (!now || now.id !== p.id || now.netdev !== p.netdev) this.queue('remove', p);
    }
    for (const [uuid, p] of next) {
      const was = before.get(uuid);
      if (!was || was.id !== p.id || was.netdev !== p.netdev) this.queue('add', p);
    }
  }

  private queue(what: 'add' | 'remove', p: OvsdbPort): void {
    this.chain = this.chain.then(async () => {
      try {
        await this.o[what](p);
        this.log.info({ relay: p.id, interface: p.netdev }, what === 'add' ? 'OVSDB Interface added: VF relayed' : 'OVSDB Interface removed: VF taken off the relay');
      } catch (err) {
        this.log.error({ relay: p.id, interface: p.netdev, err: errorMessage(err) }, `OVSDB port ${what} failed`);
      }
    });
  }
}

/** The PCI address of a netdev's device (sys/class/net/<netdev>/device), as virtio-forwarder finds a VF. */
export async function pciOfNetdev(netdev: string, sysRoot = '/'): Promise<string> {
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(netdev)) throw new Error(`"${netdev}" is not a network interface name`);
  const dev = await realpath(join(sysRoot, 'sys/class/net', netdev, 'device')).catch(() => undefined);
  const pci = dev ? pciFields(basename(dev)) : undefined;
  if (!pci) throw new Error(`interface ${netdev} is not a PCI device's netdev (no ${join('/sys/class/net', netdev, 'device')})`);
  return formatPciAddress(pci);
}

/** virtio-forwarder's OVSDB port control: an Interface's VF is ADDed and REMOVEd through the
 *  port-control backend under its relay number. */
export function startOvsdbControl(
  socketPath: string,
  sysRoot: string,
  backend: { addVf(r: { virtioId: number; pciAddrs: string[] }): Promise<unknown>; removeVf(r: { virtioId: number; pciAddrs: string[] }): Promise<unknown> },
  logger: Logger,
): OvsdbMonitor {
  const m = new OvsdbMonitor({
    socketPath,
    logger,
    add: async (p) => {
      await backend.addVf({ virtioId: p.id, pciAddrs: [await pciOfNetdev(p.netdev, sysRoot)] });
    },
    remove: async (p) => {
      await backend.removeVf({ virtioId: p.id, pciAddrs: [] });
    },
  });
  m.start();
  return m;
}
