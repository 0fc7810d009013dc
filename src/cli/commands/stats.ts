// `vio4wd stats`: relay counters and rates from the agent's stats endpoint (virtio-forwarder's
// StatsRequest), as a table or JSON, once or every few seconds. Also the client options and
// table printing that `vio4wd relay` shares.
import { Command, InvalidArgumentError, Option } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ControlClient,
  DEFAULT_IPC_DIR,
  DEFAULT_TIMEOUT_MS,
  StatsResponse_Status,
  codec,
  endpointsInDir,
  toNumber,
  type EndpointName,
  type RelayState,
  type StatsResponse,
  type StatsResponse_Worker,
} from '../../control/index.js';
import { VioError, remoteErrorCode } from '../../util/errors.js';
import { examples } from '../help.js';

export interface ClientFlags {
  endpoint?: string;
  ipcDir: string;
  timeout: number;
  json?: boolean;
}

export function intArg(name: string, min = 0, max = 0xffffffff) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name} takes a whole number ${min}..${max}`);
    return n;
  };
}

export function collect<T>(parse: (v: string) => T) {
  return (v: string, prev: T[] = []): T[] => [...prev, parse(v)];
}

/** --endpoint, --ipc-dir, --timeout and --json, for commands that talk to the agent. */
export function clientOptions(cmd: Command, endpointHelp: string): Command {
  return cmd
    .option('--endpoint <address>', `ZeroMQ address of the agent's ${endpointHelp} endpoint (overrides --ipc-dir)`)
    .addOption(
      new Option('--ipc-dir <dir>', "directory of the agent's IPC endpoints")
        .default(DEFAULT_IPC_DIR)
        .env('VIO4WD_IPC_DIR'),
    )
    .option('--timeout <ms>', 'how long to wait for the agent', intArg('--timeout', 1), DEFAULT_TIMEOUT_MS)
    .option('--json', 'print JSON instead of a table');
}

export function clientFor(flags: ClientFlags, name: EndpointName): ControlClient {
  const endpoints = endpointsInDir(flags.ipcDir, true);
  if (flags.endpoint) endpoints[name] = flags.endpoint;
  return new ControlClient({ endpoints, timeoutMs: flags.timeout });
}

/** Left-aligned text table with a header row; numbers are right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-\d.,]+[kMGT]?$|^-$/.test(r[i] ?? '')));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** 1234567 -> 1.23M; small values as they are. */
export function si(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : `${v.toFixed(2)}${units[i]}`;
}

const STATUS_TEXT: Record<number, string> = {
  [StatsResponse_Status.EBADR]: 'EBADR: the agent could not parse the request',
  [StatsResponse_Status.E2BIG]: 'E2BIG: too many relays asked for',
  [StatsResponse_Status.ENOMEM]: 'ENOMEM: the agent could not read relay state',
};

export function checkStats(res: StatsResponse): RelayState[] {
  if (res.status !== StatsResponse_Status.OK) {
    const name = Object.keys(StatsResponse_Status).find((k) => StatsResponse_Status[k as keyof typeof StatsResponse_Status] === res.status) ?? 'ERROR';
    throw new VioError(remoteErrorCode(name), `stats request refused: ${STATUS_TEXT[res.status] ?? `status ${res.status}`}`);
  }
  return res.relay ?? [];
}

export function relaysJSON(res: StatsResponse): unknown {
  return codec('virtioforwarder.StatsResponse').toJSON(res).relay;
}

export function workersJSON(res: StatsResponse): unknown {
  return codec('virtioforwarder.StatsResponse').toJSON(res).worker ?? [];
}

/** Packets the VF's NIC dropped before the relay read them (vio4wd agents only), or '-'. */
function nicDrops(r: RelayState, dir: 'rx' | 'tx'): string {
  const v = r.vf_port;
  if (!v) return '-';
  return dir === 'rx' ? String(toNumber(v.rx_missed) + toNumber(v.rx_errors) + toNumber(v.rx_nombuf)) : String(toNumber(v.tx_errors));
}

/** The worker view: each poll-mode worker's load (vio4wd agents only). */
export function workersTable(workers: StatsResponse_Worker[]): string {
  if (workers.length === 0) return 'no workers reported (the agent is not vio4wd, or its engine is not running)\n';
  return table(
    ['CPU', 'RELAY DIRS', 'BUSY %', 'PKTS', 'DROPPED', 'PPS', 'CYCLES/PKT'],
    workers.map((w) => [
      String(w.cpu),
      String(w.directions ?? 0),
      ((w.busy_ratio ?? 0) * 100).toFixed(1),
      String(toNumber(w.packets)),
      String(toNumber(w.dropped)),
      si(w.pkt_rate ?? 0),
      w.cycles_per_pkt ? w.cycles_per_pkt.toFixed(0) : '-',
    ]),
  );
}

function statsRows(relays: RelayState[]): string[][] {
  const rows: string[][] = [];
  for (const r of relays) {
    const up = r.vf_to_vm;
    const down = r.vm_to_vf;
    rows.push([
      String(r.id),
      'vf->vm',
      up.internal_state,
      r.cpu?.vf_to_vm !== undefined ? String(r.cpu.vf_to_vm) : '-',
      String(toNumber(up.pkts_rx_from_vf)),
      String(toNumber(up.pkts_tx_to_vm)),
      String(toNumber(up.bytes_tx_to_vm)),
      String(toNumber(up.pkts_dropped_vm_queue_full)),
      String(toNumber(up.pkts_dropped_vm_not_connected)),
      nicDrops(r, 'rx'),
      si(up.pkt_rate_rx_from_vf),
      si(up.pkt_rate_tx_to_vm),
      si(up.byte_rate_tx_to_vm * 8),
    ]);
    rows.push([
      String(r.id),
      'vm->vf',
      down.internal_state,
      r.cpu?.vm_to_vf !== undefined ? String(r.cpu.vm_to_vf) : '-',
      String(toNumber(down.pkts_rx_from_vm)),
      String(toNumber(down.pkts_tx_to_vf)),
      String(toNumber(down.bytes_tx_to_vf)),
      String(toNumber(down.pkts_dropped_vf_queue_full)),
      String(toNumber(down.pkts_dropped_vf_not_connected)),
      nicDrops(r, 'tx'),
      si(down.pkt_rate_rx_from_vm),
      si(down.pkt_rate_tx_to_vf),
      si(down.byte_rate_tx_to_vf * 8),
    ]);
  }
  return rows;
}

export function statsTable(relays: RelayState[]): string {
  if (relays.length === 0) return 'no relays\n';
  return table(
    ['RELAY', 'DIR', 'STATE', 'CPU', 'RX PKTS', 'TX PKTS', 'TX BYTES', 'DROP FULL', 'DROP NOCONN', 'NIC DROP', 'RX PPS', 'TX PPS', 'TX BPS'],
    statsRows(relays),
  );
}

interface StatsFlags extends ClientFlags {
  relay: number[];
  delay: number;
  watch?: number | true;
  count?: number;
  activeOnly?: boolean;
  workers?: boolean;
}

export function register(program: Command): void {
  const cmd = new Command('stats')
    .description("relay counters and rates from the agent's stats endpoint (virtio-forwarder compatible)")
    .option('-r, --relay <n>', 'only this relay number (repeat for more)', collect(intArg('--relay')), [])
    .option('--delay <ms>', 'measure rates over this many milliseconds', intArg('--delay', 0, 10_000), 200)
    .option('-w, --watch [seconds]', 'print again every few seconds (default 2) until interrupted', intArg('--watch', 1, 3600))
    .option('--count <n>', 'with --watch: stop after this many refreshes', intArg('--count', 1))
    .option('--active-only', 'leave out relays that are not fully active')
    .option('--workers', 'the worker view instead: each poll-mode worker\'s busy %, relay directions, packets and drops (busy % over --delay)');
  cmd.addHelpText('after', examples('vio4wd stats', 'vio4wd stats --watch', 'vio4wd stats --relay 3 --delay 1000 --json', 'vio4wd stats --workers'));
  clientOptions(cmd, 'stats');
  cmd.action(async (flags: StatsFlags) => {
    const client = clientFor(flags, 'stats');
    const every = flags.watch === undefined ? undefined : flags.watch === true ? 2 : flags.watch;
    const rounds = every === undefined ? 1 : (flags.count ?? Infinity);
    for (let i = 0; i < rounds; i++) {
      if (i > 0 && every !== undefined) await sleep(every * 1000);
      // vio4wd_extended: VF counters and workers from a vio4wd agent (virtio-forwarder ignores it)
      const res = await client.stats({ relay: flags.relay, delay: flags.delay, include_inactive: !flags.activeOnly, vio4wd_extended: true });
      const relays = checkStats(res);
      const key = flags.workers ? 'workers' : 'relays';
      const json = flags.workers ? workersJSON(res) : relaysJSON(res);
      if (flags.json) {
        // One JSON document per refresh (a JSON-lines stream with --watch).
        process.stdout.write(JSON.stringify(every === undefined ? json : { time: new Date().toISOString(), [key]: json }) + '\n');
      } else {
        if (every !== undefined) {
          if (process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
          process.stdout.write(`${new Date().toISOString()}  (rates over ${flags.delay} ms, every ${every} s)\n`);
        }
        process.stdout.write(flags.workers ? workersTable(res.worker ?? []) : statsTable(relays));
      }
    }
  });
  program.addCommand(cmd);
}
