// A real Kubernetes control plane for tests: etcd and kube-apiserver on loopback, started by
// test/env/kube-env (see there), with kubectl and helm bound to its admin kubeconfig.
//
//   const kube = await startKube({ users: [{ name: 'alice', groups: ['devs'] }] });
//   try { await kube.kubectl('get', 'ns'); } finally { await kube.stop(); }
//
// There is no controller-manager: namespaces never finish deleting, ownerReferences are not
// garbage-collected, namespaces get no "default" ServiceAccount and the aggregated ClusterRoles
// (admin, edit, view) have no rules. Create the ServiceAccounts a
// test needs; `serviceAccountToken` asks the TokenRequest API for a token.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, accessSync, constants, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onProcessExit } from './exit.js';
import { until } from './wait.js';

const KUBE_ENV = fileURLToPath(new URL('../env/kube-env', import.meta.url));

/** A token user written into the apiserver's --token-auth-file at start. */
export interface KubeUser {
  name: string;
  groups?: string[];
}

export interface StartKubeOptions {
  /** extra token users (besides `admin`, which is in system:masters) */
  users?: KubeUser[];
  /** extra kube-apiserver flags, e.g. '--feature-gates=...' */
  apiserverArgs?: string[];
}

export interface RunOptions {
  /** written to the command's stdin */
  input?: string;
  /** use this kubeconfig instead of the admin one (see `users`, `kubeconfigForToken`) */
  kubeconfig?: string;
  /** throw when the command exits non-zero (default true) */
  check?: boolean;
  /** kill the command after this long (default 120 s) */
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A kubectl or helm command that failed; `stderr` holds the apiserver's message. */
export class KubeCommandError extends Error {
  readonly code = 'EKUBECMD';
  constructor(
    readonly command: string,
    readonly exitCode: number,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${command} exited with ${exitCode}: ${stderr.trim() || stdout.trim()}`);
    this.name = 'KubeCommandError';
  }
}

/** startKube failed; `dir` is the environment's folder (removed again by the failed start). */
export class KubeStartError extends Error {
  readonly code = 'EKUBESTART';
  constructor(
    readonly dir: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeStartError';
  }
}

export interface KubeEnv {
  /** the folder holding certificates, logs, etcd data and kubeconfigs (removed by stop) */
  dir: string;
  /** admin kubeconfig (user `admin`, group system:masters) */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** the admin's bearer token */
  token: string;
  /** PEM of the CA that signed the apiserver's serving certificate */
  caFile: string;
  version: string;
  apiserverPid: () => number | undefined;
  etcdPid: number;
  apiserverLog: string;
  /** paths of the binaries, for tests that run them directly */
  bin: {
    kubectl: string;
    helm: string;
    kubeApiserver: string;
    etcd: string;
    kubevirtCrds: string;
    /** kube-scheduler and the DRA kubelet harness (test/env/build-*.sh) */
    kubeScheduler: string;
    draHarness: string;
  };
  /** users given at start: name -> token and a kubeconfig for that user */
  users: Record<string, { token: string; kubeconfigPath: string }>;
  /** kubectl as admin; resolves to stdout, rejects with KubeCommandError on a non-zero exit */
  kubectl: (...args: string[]) => Promise<string>;
  /** kubectl with options (stdin, another kubeconfig, no throw on failure) */
  kubectlRun: (args: string[], opts?: RunOptions) => Promise<RunResult>;
  helm: (...args: string[]) => Promise<string>;
  helmRun: (args: string[], opts?: RunOptions) => Promise<RunResult>;
  /** a token for a ServiceAccount (which must exist) from the TokenRequest API */
  serviceAccountToken: (namespace: string, name: string, opts?: { audience?: string; durationSeconds?: number }) => Promise<string>;
  /** writes a kubeconfig for a bearer token into dir and returns its path */
  kubeconfigForToken: (name: string, token: string) => string;
  /** SIGTERM the apiserver and wait for it to exit; etcd keeps the data */
  stopApiserver: () => Promise<void>;
  /** start the apiserver again on the same port, wait until ready */
  startApiserver: () => Promise<void>;
  /** stop the apiserver, then etcd, and remove dir; safe to call twice */
  stop: () => Promise<void>;
}

const live = new Set<string>();
let hooksInstalled = false;

/** Synchronously stops every environment still running: for process exit and signals. */
function stopAllSync(): void {
  for (const dir of live) {
    spawnSync(KUBE_ENV, ['stop', dir], { stdio: 'ignore', timeout: 60_000 });
    live.delete(dir);
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  onProcessExit(stopAllSync);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const res = { code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}\nkilled by ${signal}` : stderr };
      const shown = `${cmd.split('/').pop()} ${args.join(' ')}`;
      if ((opts.check ?? true) && res.code !== 0) reject(new KubeCommandError(shown, res.code, stdout, res.stderr));
      else resolve(res);
    });
    child.stdin.on('error', () => {}); // a command that exits without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

function parseEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

function must(env: Record<string, string>, key: string): string {
  const v = env[key];
  if (v === undefined || v === '') throw new Error(`kube-env: ${key} missing from env file`);
  return v;
}

/**
 * Where environments' folders go (vio4wd-kube-XXXXXX): $VIO4WD_KUBE_ENV_BASE, else /dev/shm
 * (tmpfs: etcd's fsyncs are then cheap), else the system's temporary folder.
 */
export function kubeEnvBaseDir(): string {
  const fromEnv = process.env.VIO4WD_KUBE_ENV_BASE;
  if (fromEnv) return fromEnv;
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/** Starts etcd and kube-apiserver (about 5-10 s) and returns handles to them. */
export async function startKube(options: StartKubeOptions = {}): Promise<KubeEnv> {
  installExitHooks();
  const dir = mkdtempSync(join(kubeEnvBaseDir(), 'vio4wd-kube-'));
  const args = ['start', dir, '--owner-pid', String(process.pid)];
  for (const u of options.users ?? []) args.push('--user', u.groups?.length ? `${u.name}:${u.groups.join(',')}` : u.name);
  for (const a of options.apiserverArgs ?? []) args.push('--apiserver-arg', a);
  live.add(dir);
  let started: RunResult;
  try {
    started = await run(KUBE_ENV, args, process.env, { check: false, timeoutMs: 300_000 });
  } catch (err) {
    stopAllOf(dir);
    throw err;
  }
  if (started.code !== 0) {
    stopAllOf(dir);
    throw new KubeStartError(dir, `test control plane did not start (test/env/kube-env start): ${started.stderr.trim()}`);
  }
  const e = parseEnvFile(join(dir, 'env'));
  const kubeconfigPath = must(e, 'KUBECONFIG');
  const bin = {
    kubectl: must(e, 'KUBECTL'),
    helm: must(e, 'HELM'),
    kubeApiserver: must(e, 'KUBE_APISERVER'),
    etcd: must(e, 'ETCD'),
    kubevirtCrds: must(e, 'KUBEVIRT_CRDS'),
    kubeScheduler: must(e, 'KUBE_SCHEDULER'),
    draHarness: must(e, 'DRA_HARNESS'),
  };
  const server = must(e, 'KUBE_SERVER');
  const caFile = must(e, 'CA_FILE');
  // kubectl's discovery cache and helm's caches and config stay inside the environment's folder
  const cmdEnv = (kubeconfig: string): NodeJS.ProcessEnv => ({
    ...process.env,
    KUBECONFIG: kubeconfig,
    KUBECACHEDIR: join(dir, 'kubectl-cache'),
    HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
    HELM_DATA_HOME: join(dir, 'helm', 'data'),
  });
  const users: KubeEnv['users'] = {};
  for (const name of (e.USERS ?? '').split(',').filter(Boolean)) {
    users[name] = {
      token: readFileSync(join(dir, `token-${name}`), 'utf8').trim(),
      kubeconfigPath: join(dir, `kubeconfig-${name}`),
    };
  }
  const kubectlRun = (a: string[], o: RunOptions = {}): Promise<RunResult> =>
    run(bin.kubectl, a, cmdEnv(o.kubeconfig ?? kubeconfigPath), o);
  const helmRun = (a: string[], o: RunOptions = {}): Promise<RunResult> =>
    run(bin.helm, a, cmdEnv(o.kubeconfig ?? kubeconfigPath), o);
  let stopped = false;
  const ctl = async (cmd: string): Promise<void> => {
    await run(KUBE_ENV, [cmd, dir], process.env, { timeoutMs: 300_000 });
  };
  const currentApiserverPid = (): number | undefined => {
    if (!existsSync(join(dir, 'env'))) return undefined;
    const pid = parseEnvFile(join(dir, 'env')).APISERVER_PID;
    return pid ? Number(pid) : undefined;
  };
  return {
    dir,
    kubeconfigPath,
    server,
    token: must(e, 'ADMIN_TOKEN'),
    caFile,
    version: must(e, 'KUBE_VERSION'),
    apiserverPid: currentApiserverPid,
    etcdPid: Number(must(e, 'ETCD_PID')),
    apiserverLog: must(e, 'APISERVER_LOG'),
    bin,
    users,
    kubectl: async (...a) => (await kubectlRun(a)).stdout,
    kubectlRun,
    helm: async (...a) => (await helmRun(a)).stdout,
    helmRun,
    serviceAccountToken: async (namespace, name, o = {}) => {
      const a = ['create', 'token', name, '-n', namespace];
      if (o.audience) a.push('--audience', o.audience);
      if (o.durationSeconds) a.push('--duration', `${o.durationSeconds}s`);
      return (await kubectlRun(a)).stdout.trim();
    },
    kubeconfigForToken: (name, token) => {
      if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`kubeconfigForToken: name '${name}' must be letters, digits, . _ -`);
      const ca = readFileSync(caFile).toString('base64');
      const path = join(dir, `kubeconfig-token-${name}`);
      const kc = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'vio4wd-test', cluster: { server, 'certificate-authority-data': ca } }],
        users: [{ name, user: { token } }],
        contexts: [{ name, context: { cluster: 'vio4wd-test', user: name } }],
        'current-context': name,
      };
      writeFileSync(path, JSON.stringify(kc, null, 2), { mode: 0o600 });
      return path;
    },
    stopApiserver: () => ctl('stop-apiserver'),
    startApiserver: () => ctl('start-apiserver'),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await ctl('stop');
      live.delete(dir);
    },
  };
}

/**
 * Polls `check` until it returns true, or fails after `timeoutMs` naming `what`. For what the
 * apiserver makes true a little later: RBAC bindings reach the authorizer's cache, a CRD becomes
 * served, a controller writes status.
 */
/** vio4wd's CRDs, KubeVirt's (from the test environment) and the NetworkAttachmentDefinition
 *  CRD, all Established: what the examples of docs/ and examples/ are checked against. */
export async function installExampleCrds(kube: KubeEnv): Promise<void> {
  await kube.kubectl('apply', '-f', 'crds/');
  // three KubeVirt CRDs are too big for client-side apply's annotation: create them
  await kube.kubectl('create', '-f', kube.bin.kubevirtCrds);
  await kube.kubectl('create', '-f', 'test/fixtures/kubevirt/nad-crd.yaml');
  await kube.kubectl('wait', '--for=condition=Established', 'crd', '--all', '--timeout=120s');
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
  await until(what, check, { timeoutMs, intervalMs });
}

/** After a failed start: kube-env cleans up after itself; remove an empty leftover folder. */
function stopAllOf(dir: string): void {
  live.delete(dir);
  if (existsSync(join(dir, 'env'))) spawnSync(KUBE_ENV, ['stop', dir], { stdio: 'ignore', timeout: 60_000 });
  try {
    rmdirSync(dir);
  } catch {
    // already removed by kube-env, or not empty: leave it for inspection
  }
}
