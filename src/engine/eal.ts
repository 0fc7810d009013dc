// EAL command line from typed EngineOptions: lcore ids mapped to CPUs with --lcores, so the
// main lcore (the engine's sleeping control thread) may share a CPU with a worker.
import { readFileSync } from 'node:fs';
import { ValidationError } from '../util/errors.js';
import { parseCpuList } from '../util/identifiers.js';
import { MAX_CPUS } from '../util/limits.js';
import type { EngineOptions } from './types.js';

/** CPUs this process may run on (sched_getaffinity, as /proc shows it). */
export function allowedCpus(statusText?: string): number[] {
  const text = statusText ?? readFileSync('/proc/self/status', 'utf8');
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(text);
  if (!m?.[1]) throw new Error('cannot read Cpus_allowed_list from /proc/self/status');
  return parseCpuList(m[1], 'Cpus_allowed_list');
}

export interface EalPlan {
  args: string[];
  mainCpu: number;
  /** lcore id of each worker CPU, in workerCpus order (the main lcore is 0). */
  workerLcores: number[];
}

const isCpu = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < MAX_CPUS;

/**
 * Builds the EAL argv (without argv[0]). `allowed` is the process's CPU affinity: EAL pins each
 * lcore thread, and a CPU outside the affinity fails only deep inside rte_eal_init.
 */
export function buildEalArgs(opts: EngineOptions, allowed: number[]): EalPlan {
  const workers = opts.workerCpus;
  if (!Array.isArray(workers) || workers.length === 0)
    throw new ValidationError('workerCpus', 'give at least one worker CPU, e.g. [1]');
  if (workers.length > 64) throw new ValidationError('workerCpus', `${workers.length} workers; at most 64`);
  for (const c of workers) {
    if (!isCpu(c)) throw new ValidationError('workerCpus', `${String(c)} is not a CPU number`);
    if (!allowed.includes(c))
      throw new ValidationError('workerCpus', `CPU ${c} is not in this process's CPU affinity (${allowed.join(',')}); check taskset/cpuset`);
  }
  if (new Set(workers).size !== workers.length) throw new ValidationError('workerCpus', `duplicate CPU in [${workers.join(',')}]`);
  let mainCpu: number;
  if (opts.mainCpu !== undefined) {
    if (!isCpu(opts.mainCpu)) throw new ValidationError('mainCpu', `${String(opts.mainCpu)} is not a CPU number`);
    if (!allowed.includes(opts.mainCpu))
      throw new ValidationError('mainCpu', `CPU ${opts.mainCpu} is not in this process's CPU affinity (${allowed.join(',')})`);
    mainCpu = opts.mainCpu;
  } else {
    // the allowed CPU nearest below the first worker (then above) that runs no worker, else
    // share the first worker's CPU: the main lcore only sleeps
    const w0 = workers[0] as number;
    const free = allowed.filter((c) => !workers.includes(c));
    const below = free.filter((c) => c < w0);
    const above = free.filter((c) => c > w0);
    mainCpu = below.length ? (below[below.length - 1] as number) : above.length ? (above[0] as number) : w0;
  }
  const lcores = [`0@${mainCpu}`, ...workers.map((c, i) => `${i + 1}@${c}`)].join(',');
  const args = ['--lcores', lcores, '--main-lcore', '0', '--no-telemetry'];
  if (opts.hugeDir !== undefined) {
    if (typeof opts.hugeDir !== 'string' || !opts.hugeDir.startsWith('/'))
      throw new ValidationError('hugeDir', `"${String(opts.hugeDir)}" is not an absolute path`);
    args.push('--huge-dir', opts.hugeDir);
  }
  if (opts.filePrefix !== undefined) {
    if (typeof opts.filePrefix !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(opts.filePrefix))
      throw new ValidationError('filePrefix', `"${String(opts.filePrefix)}": use 1-64 letters, digits, '_', '.', '-'`);
    args.push('--file-prefix', opts.filePrefix);
  }
  if (opts.inMemory) args.push('--in-memory');
  // no hugepage file outlives the process, even after SIGKILL: nothing else maps our memory
  // (vhost-user shares the guest's memory with us, not ours with it)
  else if (!(opts.extraEalArgs ?? []).some((a) => a.startsWith('--huge-unlink'))) args.push('--huge-unlink=always');
  if (opts.socketMemMb !== undefined) {
    const mem = opts.socketMemMb;
    if (!Array.isArray(mem) || mem.length === 0 || mem.some((m) => !Number.isInteger(m) || m < 0))
      throw new ValidationError('socketMemMb', 'give MiB per NUMA node as non-negative integers, e.g. [512]');
    args.push('--socket-mem', mem.join(','));
  }
  if (opts.noPci) args.push('--no-pci');
  const level = opts.logLevel ?? 5;
  if (!Number.isInteger(level) || level < 1 || level > 8) throw new ValidationError('logLevel', `${String(level)} is out of range 1..8`);
  args.push(`--log-level=${level}`);
  if (opts.extraEalArgs !== undefined) {
    if (!Array.isArray(opts.extraEalArgs) || opts.extraEalArgs.some((a) => typeof a !== 'string'))
      throw new ValidationError('extraEalArgs', 'must be an array of strings');
    args.push(...opts.extraEalArgs);
  }
  return { args, mainCpu, workerLcores: workers.map((_, i) => i + 1) };
}
