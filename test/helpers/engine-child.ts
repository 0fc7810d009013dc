// Child process that hosts one Engine for tests (DPDK's EAL starts once per process, and a VF
// stand-in like net_tap lives in the network namespace of the process that creates it).
// Protocol, one JSON object per line: in {seq, method, args}; out {seq, ok, value | error},
// and {event} for every engine event. stdin EOF stops the engine and exits.
import { createInterface } from 'node:readline';
import { Engine } from '../../src/engine/index.js';

let engine: Engine | undefined;
const out = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

async function handle(method: string, args: unknown[]): Promise<unknown> {
  if (method === 'start') {
    engine = await Engine.start(args[0] as Parameters<typeof Engine.start>[0]);
    engine.on('event', (event) => out({ event }));
    return { mainCpu: engine.mainCpu };
  }
  if (!engine) throw Object.assign(new Error('no engine: call start first'), { code: 'ENOTSTARTED' });
  const fn = (engine as unknown as Record<string, (...a: unknown[]) => unknown>)[method];
  if (typeof fn !== 'function') throw Object.assign(new Error(`no method ${method}`), { code: 'EINVAL' });
  return await fn.apply(engine, args);
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const { seq, method, args } = JSON.parse(line) as { seq: number; method: string; args: unknown[] };
    handle(method, args ?? []).then(
      (value) => out({ seq, ok: true, value: value ?? null }),
      (err: { code?: string; message?: string }) => out({ seq, ok: false, error: { code: err.code ?? 'EIO', message: err.message ?? String(err) } }),
    );
  })
  .on('close', () => {
    void (engine ? engine.stop() : Promise.resolve()).finally(() => process.exit(0));
  });
