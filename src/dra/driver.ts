// The DRA driver's node side: NodePrepareResources makes each allocated relay ready for the
// claim (its opaque configuration checked, the VF programmed with the claim's MAC and VLAN through
// the same attachment service vio4wd-cni uses), writes the claim's CDI spec and device metadata
// and returns the CDI device IDs; NodeUnprepareResources puts the pool default back and removes
// the files. Both are idempotent and checkpointed, so an agent restart loses nothing.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { resolveDevices } from '../deviceplugin/allocate.js';
import { parsePool } from '../deviceplugin/pool.js';
import type { RelayStatus, RelayView } from '../relay/types.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { AttachReply, AttachRequest } from '../cni/protocol.js';
import { PROTOCOL_VERSION } from '../cni/protocol.js';
import { cdiNameOf, cdiQualifiedName, draPodSocketDir, removeClaimFiles, writeClaimFiles, type ClaimIdentity, type PreparedDevice } from './cdi.js';
import { ClaimConfigError, configFor, type RelayConfig } from './config.js';
import { DRIVER_NAME } from './constants.js';
import { readIfExists } from '../util/files.js';
import type { FreeVf } from './devices.js';
import type { ClaimApi, ClaimRef, DeviceLookup, DeviceStatusReport, PoolLimits, ResourceClaim, VfRelays } from './types.js';

export type { ClaimApi, ClaimRef, DeviceLookup, DeviceStatusReport, PoolLimits, ResourceClaim, VfRelays } from './types.js';

export interface DraDriverOptions {
  relays: RelayView;
  devices: DeviceLookup;
  claims: ClaimApi;
  /** The attachment service (src/cni/attachments.ts): the one code path that programs a VF. */
  attach: (req: AttachRequest) => Promise<AttachReply>;
  /** The admin's limits for a pool on this node (VirtioForwarderPolicy spec.limits), if any. */
  poolLimits?: (resourceName: string) => PoolLimits | undefined;
  /** Why the pool policy refuses a claim's VLAN or spoof checking for a relay of a pool, or undefined
   *  (the attachment service's decision, asked before a relay is made). */
  vfSettingsDenied?: (resourceName: string, subject: string, req: { vlan: number; spoofchk: boolean }) => string | undefined;
  /** Makes and deletes the relays of free VFs' devices; absent: such devices cannot be prepared. */
  vfRelays?: VfRelays;
  cdiDir: string;
  metadataDir: string;
  /** Checkpoint of prepared claims (JSON, 0600); null: none (unit tests). */
  statePath: string | null;
  logger: Logger;
}

interface CheckpointClaim {
  namespace: string;
  name: string;
  podClaimName?: string;
  devices: (PreparedDevice & { cdiId: string; created?: FreeVf })[];
}

interface Checkpoint {
  version: 1;
  claims: Record<string, CheckpointClaim>;
}

export interface PrepareResult {
  devices: { request_names: string[]; pool_name: string; device_name: string; cdi_device_ids: string[] }[];
  error: string;
}

/** A device's attachment in the attachment service: one per claim and device. */
function attachmentKey(claimUid: string, d: { request: string; device: string }): { containerId: string; ifName: string } {
  return { containerId: `dra:${claimUid}`, ifName: `${d.request}/${d.device}` };
}

export class DraDriver {
  private readonly log: Logger;
  private readonly prepared = new Map<string, CheckpointClaim>();
  /** One claim operation at a time: kubelet may retry while a call still runs. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: DraDriverOptions) {
    this.log = o.logger.child({ component: 'dra' });
  }

  async start(): Promise<void> {
    if (!this.o.statePath) return;
    const text = await readIfExists(this.o.statePath);
    if (text === undefined) return;
    try {
      const cp = JSON.parse(text) as Checkpoint;
      if (cp.version !== 1 || typeof cp.claims !== 'object' || cp.claims === null) throw new Error('not a version 1 checkpoint');
      for (const [uid, c] of Object.entries(cp.claims)) {
        if (c && Array.isArray(c.devices) && typeof c.name === 'string') this.prepared.set(uid, c);
      }
      this.log.info({ claims: this.prepared.size }, 'prepared claims restored from the checkpoint');
      // the relays made for free VFs come back as they were prepared (the agent's own config lacks them)
      for (const c of this.prepared.values()) {
        for (const d of c.devices) {
          if (!d.created || !this.o.vfRelays) continue;
          this.o.vfRelays.create(d.created, d.relay, { queues: d.queues, ...(d.mtu !== undefined ? { mtu: d.mtu } : {}), namespace: c.namespace, claim: c.name }).catch((err: unknown) => this.log.error({ relay: d.relay, err: errorMessage(err) }, 'relay of a prepared claim not restored'));
        }
      }
    } catch (err) {
      this.log.error({ path: this.o.statePath, err: errorMessage(err) }, 'DRA checkpoint unreadable: moved aside, starting without prepared claims');
      await rename(this.o.statePath, `${this.o.statePath}.bad`).catch(() => undefined);
    }
  }

  /** Claim UIDs prepared now (status, tests). */
  preparedClaims(): string[] {
    return [...this.prepared.keys()];
  }

  /** The devices of the prepared claims, with their relays (the health stream). */
  preparedDevices(): { pool: string; device: string; relay: string }[] {
    return [...this.prepared.values()].flatMap((c) => c.devices.map((d) => ({ pool: d.pool, device: d.device, relay: d.relay })));
  }

  prepare(claims: readonly ClaimRef[]): Promise<Record<string, PrepareResult>> {
    return this.serial(async () => {
      const out: Record<string, PrepareResult> = {};
      for (const c of claims) out[c.uid] = await this.prepareOne(c);
      return out;
    });
  }

  unprepare(claims: readonly ClaimRef[]): Promise<Record<string, { error: string }>> {
    return this.serial(async () => {
      const out: Record<string, { error: string }> = {};
      for (const c of claims) {
        try {
          await this.unprepareOne(c);
          out[c.uid] = { error: '' };
        } catch (err) {
          this.log.warn({ claim: `${c.namespace}/${c.name}`, err: errorMessage(err) }, 'unprepare failed');
          out[c.uid] = { error: errorMessage(err) };
        }
      }
      return out;
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async prepareOne(ref: ClaimRef): Promise<PrepareResult> {
    const claimRef = `${ref.namespace}/${ref.name}`;
    let claim: ResourceClaim;
    try {
      claim = await this.o.claims.get(ref.namespace, ref.name);
    } catch (err) {
      const done = this.prepared.get(ref.uid);
      // already prepared (a retry while the apiserver is away): the same answer again
      if (done) return this.result(done);
      return { devices: [], error: `cannot read ResourceClaim ${claimRef}: ${errorMessage(err)}` };
    }
    if (claim.metadata?.uid !== ref.uid) {
      return { devices: [], error: `ResourceClaim ${claimRef} has UID ${claim.metadata?.uid ?? 'none'}, kubelet asked for ${ref.uid}: it was deleted and recreated; the pod must be recreated` };
    }
    const results = (claim.status?.allocation?.devices?.results ?? []).filter((r) => r.driver === DRIVER_NAME);
    if (results.length === 0) return { devices: [], error: `ResourceClaim ${claimRef} has no device of driver ${DRIVER_NAME} allocated` };
    const identity: ClaimIdentity = {
      uid: ref.uid,
      namespace: ref.namespace,
      name: ref.name,
      ...(claim.metadata?.annotations?.['resource.kubernetes.io/pod-claim-name'] ? { podClaimName: claim.metadata.annotations['resource.kubernetes.io/pod-claim-name'] } : {}),
    };
    const configs = claim.status?.allocation?.devices?.config ?? [];
    const reports: DeviceStatusReport[] = [];
    const ready: { d: PreparedDevice; status: RelayStatus; created?: FreeVf }[] = [];
    const created: string[] = [];
    const perRequest = new Map<string, number>();
    try {
      // 1. resolve and check everything first: a bad config changes nothing on the node
      const planned: { d: PreparedDevice; spoofchk: boolean; create?: FreeVf }[] = [];
      for (const r of results) {
        const look = () => ({ relay: this.o.devices.relayOf(r.pool, r.device), vf: this.o.devices.vfOf?.(r.pool, r.device) });
        let found = look();
        if (!found.relay && !found.vf && this.o.devices.refresh) {
          await this.o.devices.refresh();
          found = look();
        }
        const cfg = configFor(configs, r.request, claimRef);
        const n = perRequest.get(r.request) ?? 0;
        perRequest.set(r.request, n + 1);
        const base = { request: r.request, pool: r.pool, device: r.device, cdiName: cdiNameOf(ref.uid, r.device), podDir: draPodSocketDir(identity, r.request, n), vlan: cfg.vlan ?? 0, ...(cfg.mac ? { mac: cfg.mac } : {}) };
        if (found.vf) {
          // a free VF: its relay is made for this claim, with the claim's queues and MTU
          const { vf, relay } = found.vf;
          const { queues, mtu } = checkQueuesMtu(claimRef, r, cfg, { maxQueues: vf.maxQueues, ...(vf.maxMtu !== undefined ? { maxMtu: vf.maxMtu } : {}), policy: vf.policy ?? '?' }, 1, undefined, vf.resourceName);
          this.checkVfSettings(claimRef, r, vf.resourceName, base.vlan, cfg.spoofchk ?? true);
          planned.push({ d: { ...base, relay, resourceName: vf.resourceName, queues, ...(mtu !== undefined ? { mtu } : {}) }, spoofchk: cfg.spoofchk ?? true, create: vf });
          continue;
        }
        const relay = found.relay;
        if (!relay) throw new PrepareError(r, `device ${r.device} of pool ${r.pool} is not published by this node any more (its relay is gone): delete the pod so the claim is allocated again`);
        const status = this.o.relays.get(relay);
        if (!status) throw new PrepareError(r, `relay ${relay} (device ${r.device}) is gone from this node`);
        const pool = parsePool(status.resourceName, `relay ${relay}: resourceName`);
        try {
          resolveDevices(pool, [relay], (id) => this.o.relays.get(id), `device ${r.device}`, this.o.relays.list());
        } catch (err) {
          throw new PrepareError(r, `${errorMessage(err)}; kubelet retries`, 'NotReady');
        }
        const limits = this.o.poolLimits?.(status.resourceName);
        const ns = limits?.namespaces;
        if (ns && !ns.includes('*') && !ns.includes(ref.namespace)) {
          throw new PrepareError(r, `namespace ${ref.namespace} may not use pool ${status.resourceName} (VirtioForwarderPolicy ${limits.policy} spec.namespaces): ask the cluster admin, or claim a device of a pool your namespace may use`, 'PolicyDenied');
        }
        const { queues, mtu } = checkQueuesMtu(claimRef, r, cfg, { ...limits, maxQueues: status.queues, policy: limits?.policy ?? '?' }, status.queues, status.mtu, status.resourceName, limits?.maxQueues);
        this.checkVfSettings(claimRef, r, status.resourceName, base.vlan, cfg.spoofchk ?? true);
        planned.push({ d: { ...base, relay, resourceName: status.resourceName, queues, ...(mtu !== undefined ? { mtu } : {}) }, spoofchk: cfg.spoofchk ?? true });
      }
      // 2. make the relays of free VFs, then program each VF (and the relay's queues and MTU)
      //    through the attachment service (idempotent for the same claim)
      for (const p of planned) {
        if (p.create) {
          if (!this.o.vfRelays) throw new PrepareError(p.d, `device ${p.d.device} is a free VF and this agent makes no relays for VFs`, 'PrepareFailed');
          const existed = this.o.relays.get(p.d.relay) !== undefined;
          try {
            await this.o.vfRelays.create(p.create, p.d.relay, { queues: p.d.queues, ...(p.d.mtu !== undefined ? { mtu: p.d.mtu } : {}), namespace: ref.namespace, claim: ref.name });
          } catch (err) {
            if (!existed) await this.o.vfRelays.remove(p.d.relay).catch(() => undefined);
            throw new PrepareError(p.d, `making relay ${p.d.relay} on VF ${p.create.pciAddress} failed: ${errorMessage(err)}`, 'RelayFailed');
          }
          if (!existed) created.push(p.d.relay);
        }
        const key = attachmentKey(ref.uid, p.d);
        const reply = await this.o.attach({
          version: PROTOCOL_VERSION,
          op: 'add',
          ...key,
          network: `dra:${claimRef}`,
          deviceId: p.d.relay,
          vlan: p.d.vlan,
          spoofchk: p.spoofchk,
          queues: p.d.queues,
          ...(p.d.mac ? { mac: p.d.mac } : {}),
          ...(p.d.mtu !== undefined ? { mtu: p.d.mtu } : {}),
        });
        if (!reply.ok) {
          const hint = /runtimeConfig\.mac|spec\.mac/.test(reply.msg) ? `; set mac in the claim's opaque configuration (apiVersion ${'vio4wd.io/v1alpha1'}, kind RelayConfig)` : '';
          throw new PrepareError({ ...p.d }, `${reply.msg}${hint}`, 'VFProgrammingFailed');
        }
        if (!p.d.mac && reply.attachment?.mac) p.d.mac = reply.attachment.mac;
        const status = this.o.relays.get(p.d.relay);
        if (!status) throw new PrepareError(p.d, `relay ${p.d.relay} (device ${p.d.device}) is gone from this node`);
        ready.push({ d: p.d, status, ...(p.create ? { created: p.create } : {}) });
      }
      // 3. files, checkpoint
      await writeClaimFiles(this.o.cdiDir, this.o.metadataDir, identity, ready);
      const entry: CheckpointClaim = {
        namespace: ref.namespace,
        name: ref.name,
        ...(identity.podClaimName ? { podClaimName: identity.podClaimName } : {}),
        devices: ready.map(({ d, created: vf }) => ({ ...d, cdiId: cdiQualifiedName(d.cdiName), ...(vf ? { created: vf } : {}) })),
      };
      this.prepared.set(ref.uid, entry);
      await this.save();
      for (const { d, status } of ready) {
        const sock = `${d.podDir}/${status.socketPath.split('/').pop()!}`;
        reports.push({
          pool: d.pool,
          device: d.device,
          ready: true,
          reason: 'Prepared',
          message: `relay ${d.relay} ready: socket ${sock}, ${d.queues} queue(s)${d.mac ? `, MAC ${d.mac}` : ''}${d.vlan ? `, VLAN ${d.vlan}` : ''}`,
          data: { relay: d.relay, socketPath: sock, mode: status.mode === 'client' ? 'server' : 'client', queues: d.queues, ...(d.mtu !== undefined ? { mtu: d.mtu } : {}) },
          ...(d.mac ? { hardwareAddress: d.mac } : {}),
        });
      }
      await this.report(ref, reports);
      this.log.info({ claim: claimRef, uid: ref.uid, devices: ready.map(({ d }) => `${d.device}=${d.relay}${d.mac ? ` ${d.mac}` : ''}`) }, 'claim prepared');
      return this.result(entry);
    } catch (err) {
      // roll back attachments made for this call's devices that no earlier prepare holds
      if (!this.prepared.has(ref.uid)) {
        for (const { d } of ready) await this.o.attach({ version: PROTOCOL_VERSION, op: 'del', ...attachmentKey(ref.uid, d) }).catch(() => undefined);
        for (const relay of created) await this.o.vfRelays?.remove(relay).catch(() => undefined);
      }
      const msg = errorMessage(err);
      const bad = err instanceof PrepareError ? err.device : undefined;
      const reason = err instanceof ClaimConfigError ? 'InvalidConfig' : err instanceof PrepareError ? err.reason : 'PrepareFailed';
      const failed = bad ? results.filter((r) => r.pool === bad.pool && r.device === bad.device) : results;
      await this.report(
        ref,
        failed.map((r) => ({ pool: r.pool, device: r.device, ready: false, reason, message: msg })),
      );
      this.log.warn({ claim: claimRef, reason, err: msg }, 'claim not prepared');
      return { devices: [], error: msg };
    }
  }

  /** The pool policy's VLAN and spoof-check limits, before anything is made or programmed. */
  private checkVfSettings(claimRef: string, r: { pool: string; device: string; request: string }, resourceName: string, vlan: number, spoofchk: boolean): void {
    const denied = this.o.vfSettingsDenied?.(resourceName, `claim ${claimRef} (request ${r.request}, device ${r.device})`, { vlan, spoofchk });
    if (denied) throw new PrepareError(r, denied, 'PolicyDenied');
  }

  private async report(ref: ClaimRef, devices: DeviceStatusReport[]): Promise<void> {
    if (devices.length === 0) return;
    try {
      await this.o.claims.reportStatus(ref.namespace, ref.name, devices);
    } catch (err) {
      this.log.warn({ claim: `${ref.namespace}/${ref.name}`, err: errorMessage(err) }, 'cannot write the device status into the claim (RBAC resourceclaims/status?)');
    }
  }

  private result(c: CheckpointClaim): PrepareResult {
    return {
      devices: c.devices.map((d) => ({ request_names: [d.request.split('/')[0]!], pool_name: d.pool, device_name: d.device, cdi_device_ids: [d.cdiId] })),
      error: '',
    };
  }

  private async unprepareOne(ref: ClaimRef): Promise<void> {
    const c = this.prepared.get(ref.uid);
    if (c) {
      for (const d of c.devices) {
        const reply = await this.o.attach({ version: PROTOCOL_VERSION, op: 'del', ...attachmentKey(ref.uid, d) });
        if (!reply.ok) throw new Error(`putting relay ${d.relay} back to its pool default failed: ${reply.msg}`);
        // a relay made for a free VF goes: the VF is free again
        if (d.created) await this.o.vfRelays?.remove(d.relay);
      }
    }
    await removeClaimFiles(this.o.cdiDir, this.o.metadataDir, ref.uid);
    if (c) {
      this.prepared.delete(ref.uid);
      await this.save();
      this.log.info({ claim: `${ref.namespace}/${ref.name}`, uid: ref.uid, relays: c.devices.map((d) => d.relay) }, 'claim unprepared: relays back to the pool default');
    }
  }

  private async save(): Promise<void> {
    const path = this.o.statePath;
    if (!path) return;
    const cp: Checkpoint = { version: 1, claims: Object.fromEntries(this.prepared) };
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.tmp`;
    await writeFile(tmp, `${JSON.stringify(cp, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  }
}

class PrepareError extends Error {
  constructor(
    readonly device: { pool: string; device: string },
    message: string,
    readonly reason = 'DeviceGone',
  ) {
    super(message);
    this.name = 'PrepareError';
  }
}

/**
 * The queue pairs and MTU a device gets: the claim's (checked against the device's maxQueues and
 * the pool policy's limits) or the device's own.
 */
function checkQueuesMtu(
  claimRef: string,
  r: { request: string; device: string },
  cfg: RelayConfig,
  lim: { maxQueues: number; maxMtu?: number; policy: string },
  ownQueues: number,
  ownMtu: number | undefined,
  resourceName: string,
  policyMaxQueues?: number,
): { queues: number; mtu?: number } {
  const where = `ResourceClaim ${claimRef} request "${r.request}"`;
  const queues = cfg.queues ?? ownQueues;
  if (queues > lim.maxQueues) {
    throw new ClaimConfigError(`${where}: queues: ${queues} exceeds device ${r.device}'s maxQueues ${lim.maxQueues}; ask for at most ${lim.maxQueues}, or select a device with device.attributes["${DRIVER_NAME}"].maxQueues >= ${queues}`);
  }
  if (policyMaxQueues !== undefined && queues > policyMaxQueues) {
    throw new ClaimConfigError(`${where}: queues: ${queues} exceeds pool ${resourceName}'s limit of ${policyMaxQueues} (VirtioForwarderPolicy ${lim.policy} spec.limits.maxQueues)`);
  }
  if (cfg.mtu !== undefined && lim.maxMtu !== undefined && cfg.mtu > lim.maxMtu) {
    throw new ClaimConfigError(`${where}: mtu: ${cfg.mtu} exceeds pool ${resourceName}'s limit of ${lim.maxMtu} (VirtioForwarderPolicy ${lim.policy} spec.limits.maxMtu)`);
  }
  const mtu = cfg.mtu ?? ownMtu;
  return { queues, ...(mtu !== undefined ? { mtu } : {}) };
}
