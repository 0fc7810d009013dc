// The agent's side of vio4wd-cni: which pod attachment holds which relay, with what MAC. ADD
// programs the relay's VF through its PF (MAC, VLAN, spoof check) and gives the relay that MAC;
// DEL puts the pool's default back; a relay held by one pod is refused to another. The
// attachments are kept in a checkpoint file, so an agent restart keeps them.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import type { VfPort } from '../sriov/programmer.js';
import { CniCode, CniError, errorReply, type AttachReply, type AttachRequest, type Attachment, type PodRef } from './protocol.js';
import { readIfExists } from '../util/files.js';
import type { VfSettingsRequest } from '../policy/vf-settings.js';
import type { AttachmentServiceOptions, HandleOptions } from './attachment-types.js';

export type { AttachRelays, AttachmentServiceOptions, HandleOptions, VfLimitsSource } from './attachment-types.js';

interface Checkpoint {
  version: 1;
  attachments: Attachment[];
  /** relay name -> the MAC its VF had before the first attachment (when spec.mac is unset). */
  defaults: Record<string, string>;
}

export class AttachmentService {
  /** relay name -> its attachment */
  private readonly byRelay = new Map<string, Attachment>();
  private readonly defaults = new Map<string, string>();
  private readonly log: Logger;
  /** One request at a time: ADD/DEL of the same relay must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  /** an upgrade handover moves the relays to a new agent (docs/upgrade.md): no change here */
  private frozen = false;

  constructor(private o: AttachmentServiceOptions) {
    this.log = o.logger.child({ component: 'cni' });
  }

  /** Loads the checkpoint and shows each attachment's MAC on its relay again. */
  async start(): Promise<void> {
    if (!this.o.statePath) return;
    const text = await readIfExists(this.o.statePath);
    if (text === undefined) return;
    let cp: Checkpoint;
    try {
      cp = JSON.parse(text) as Checkpoint;
      if (cp.version !== 1 || !Array.isArray(cp.attachments)) throw new Error('not a version 1 checkpoint');
    } catch (err) {
      // keep the file for a human; start empty rather than not at all
      this.log.error({ path: this.o.statePath, err: errorMessage(err) }, 'attachment checkpoint unreadable: moved aside, starting without attachments');
      await rename(this.o.statePath, `${this.o.statePath}.bad`).catch(() => undefined);
      return;
    }
    for (const [k, v] of Object.entries(cp.defaults ?? {})) this.defaults.set(k, v);
    for (const a of cp.attachments) {
      this.byRelay.set(a.deviceId, a);
      try {
        if (this.o.relays.relay(a.deviceId)) this.relayAppeared(a.deviceId);
      } catch (err) {
        this.log.warn({ relay: a.deviceId, err: errorMessage(err) }, 'restored attachment: relay not there yet');
      }
    }
    this.log.info({ attachments: this.byRelay.size }, 'attachments restored from the checkpoint');
  }

  /** The attachments, for status and tests. */
  list(): Attachment[] {
    return [...this.byRelay.values()].map((a) => ({ ...a }));
  }

  /** A relay comes back (agent restart): shows its attachment's MAC on it again. */
  relayAppeared(name: string): void {
    const a = this.byRelay.get(name);
    if (!a) return;
    this.o.relays.setMac(name, a.mac);
    // the relay came back with its own queues and MTU: the attachment's are put back on it
    if (a.relayConfig && this.o.relays.configure) {
      this.o.relays.configure(name, a.relayConfig).catch((err: unknown) => this.log.warn({ relay: name, err: errorMessage(err) }, 'restored attachment: cannot give the relay its queues and MTU again'));
    }
  }

  /**
   * Answers one request (never throws: a failure is an error reply with a CNI code). `allocated`:
   * the caller already knows the relay was allocated to this attachment (the DRA driver: the
   * claim's allocation names the device), so kubelet's pod-resources are not asked.
   */
  handle(req: AttachRequest, opts: HandleOptions = {}): Promise<AttachReply> {
    const run = this.queue.then(() => this.dispatch(req, opts)).catch((err: unknown) => errorReply(err));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Refuses ADD, DEL and GC from now on ("try again later": the new agent reads the state
   *  file this one wrote), once the request in progress is answered. */
  async freeze(): Promise<void> {
    this.frozen = true;
    await this.queue;
  }

  /** The handover was given up: requests are served again. */
  thaw(): void {
    this.frozen = false;
  }

  private async dispatch(req: AttachRequest, opts: HandleOptions): Promise<AttachReply> {
    if (this.frozen && req.op !== 'status' && req.op !== 'check') {
      throw new CniError(CniCode.TryAgainLater, `${req.op.toUpperCase()}: a handover to a new agent (an upgrade) is in progress on this node: nothing was changed; try again in a few seconds (the new agent answers on the same socket)`);
    }
    switch (req.op) {
      case 'status':
        return { ok: true };
      case 'add':
        return { ok: true, attachment: await this.add(req, opts) };
      case 'check':
        return { ok: true, attachment: await this.check(req) };
      case 'del':
        return { ok: true, removed: await this.del(req) };
      case 'gc':
        return { ok: true, removed: await this.gc(req) };
    }
  }

  /** A MAC that a relay of another namespace's pod holds is not given to a second VF: the PF
   *  switches frames by MAC, so that VF could take the other namespace's traffic (spoof check
   *  passes: it is the VF's own MAC). The same namespace may (a migration's source and target). */
  private checkMacOwner(name: string, namespace: string | undefined, mac: string): void {
    if (namespace === undefined) return;
    const taken = this.o.relays.macTaken?.(name, namespace, mac);
    if (taken) throw new CniError(CniCode.InvalidConfig, taken);
    for (const [other, a] of this.byRelay) {
      if (other === name || a.mac !== mac) continue;
      const ns = this.o.relays.relay(other)?.namespace ?? a.pod?.namespace;
      if (ns === undefined || ns === namespace) continue;
      throw new CniError(
        CniCode.InvalidConfig,
        `mac: ${mac} is already the MAC of relay "${other}" of namespace ${ns}: a second VF with it would receive that namespace's frames; give this VM (namespace ${namespace}) another MAC`,
      );
    }
  }

  private find(containerId: string, ifName: string): Attachment | undefined {
    for (const a of this.byRelay.values()) if (a.containerId === containerId && a.ifName === ifName) return a;
    return undefined;
  }

  private async add(req: AttachRequest, opts: HandleOptions): Promise<Attachment> {
    const name = req.deviceId!;
    const relay = this.o.relays.relay(name);
    if (!relay) {
      throw new CniError(CniCode.RelayNotFound, `deviceID "${name}": no relay of that ID on this node; the pod must request the pool's resource (vio4wd.io/<pool>) so that the device plugin allocates a relay, and the attachment must name that pool in k8s.v1.cni.cncf.io/resourceName`);
    }
    if (relay.namespace !== undefined && req.pod && req.pod.namespace !== relay.namespace) {
      // kubelet may hand a pool's relay to a pod of any namespace (PreStartContainer refuses the
      // container later): its VF is not touched for that pod
      throw new CniError(CniCode.RelayNotAllocated, `relay "${name}" belongs to namespace ${relay.namespace}; pod ${req.pod.namespace}/${req.pod.name} may not attach it: create a VirtioRelay in namespace ${req.pod.namespace}`);
    }
    if (!opts.allocated) await this.checkAllocated(name, relay.resourceName, req.pod);
    // the admin's limits before anything reads or writes the VF
    const denied = this.vfSettingsDenied(relay.resourceName, `relay "${name}"`, { vlan: req.vlan ?? 0, spoofchk: req.spoofchk ?? true });
    if (denied) {
      this.log.warn({ relay: name, pod: req.pod ? `${req.pod.namespace}/${req.pod.name}` : undefined, err: denied }, 'ADD refused by the pool policy');
      throw new CniError(CniCode.PolicyDenied, denied);
    }
    if (!opts.reconfigure && req.mtu !== undefined && relay.mtu !== undefined && req.mtu !== relay.mtu) {
      throw new CniError(CniCode.InvalidConfig, `mtu: the attachment asks for ${req.mtu} but relay "${name}" forwards ${relay.mtu}; set the VirtioRelay's spec.mtu to ${req.mtu} or drop mtu from the network config`);
    }
    const held = this.byRelay.get(name);
    if (held && (held.containerId !== req.containerId || held.ifName !== req.ifName)) {
      throw new CniError(
        CniCode.RelayInUse,
        `relay "${name}" is attached to container ${held.containerId} (${held.ifName}, MAC ${held.mac}) since ${held.since}; a relay serves one pod at a time: ` +
          'delete that pod (its CNI DEL frees the relay), or request another relay of the pool',
      );
    }
    const other = this.find(req.containerId!, req.ifName!);
    if (other && other.deviceId !== name) {
      throw new CniError(CniCode.InvalidConfig, `interface ${req.ifName} of container ${req.containerId} is already attached to relay "${other.deviceId}": DEL it first, or use another interface name`);
    }
    const port = await this.o.relays.port(name);
    const fallback = await this.defaultMac(name, relay.specMac, port);
    const mac = req.mac ?? held?.mac ?? fallback;
    const vlan = req.vlan ?? 0;
    const spoofchk = req.spoofchk ?? true;
    const relayConfig = opts.reconfigure ? relayConfigOf(req, relay) : undefined;
    const sameConfig = JSON.stringify(relayConfig) === JSON.stringify(held?.relayConfig);
    if (held && held.mac === mac && held.vlan === vlan && held.spoofchk === spoofchk && sameConfig) return { ...held };
    if (!mac) {
      throw new CniError(CniCode.InvalidConfig, `relay "${name}" has no MAC to give its VF: pass the VM's MAC (runtimeConfig.mac, with "capabilities": {"mac": true} in the network config) or set the VirtioRelay's spec.mac`);
    }
    this.checkMacOwner(name, relay.namespace, mac);
    if (!sameConfig) await this.configure(name, relayConfig);
    try {
      await this.program(name, port, mac, vlan, spoofchk);
    } catch (err) {
      if (!sameConfig) await this.configure(name, held?.relayConfig).catch(() => undefined);
      throw err;
    }
    const a: Attachment = {
      deviceId: name,
      containerId: req.containerId!,
      ifName: req.ifName!,
      network: req.network ?? '',
      ...(req.netns ? { netns: req.netns } : {}),
      ...(req.pod ? { pod: { ...req.pod } } : {}),
      mac,
      vlan,
      spoofchk,
      ...(req.mtu !== undefined ? { mtu: req.mtu } : relay.mtu !== undefined ? { mtu: relay.mtu } : {}),
      ...(port.kind === 'pci' ? { pciAddress: port.pciAddress } : {}),
      ...(relayConfig ? { relayConfig } : {}),
      socketPath: relay.socketPath,
      since: held?.since ?? new Date().toISOString(),
    };
    this.byRelay.set(name, a);
    this.o.relays.setMac(name, mac);
    await this.save();
    this.log.info({ relay: name, container: a.containerId, ifName: a.ifName, mac, vlan, vf: port.kind === 'pci' ? port.pciAddress : port.devargs }, 'relay attached to a pod: VF programmed');
    return { ...a };
  }

  /**
   * Why the admin's limits refuse these VF settings for a relay of pool `resourceName`, or
   * undefined: the one decision for every path that programs a VF (vio4wd-cni's ADD, a DRA claim,
   * which asks before it makes a relay). Throws CniError TryAgainLater while the limits are unknown.
   */
  vfSettingsDenied(resourceName: string | undefined, subject: string, req: VfSettingsRequest): string | undefined {
    return this.o.limits.denied(resourceName, subject, req);
  }

  /** Stops watching the limits' source. */
  async stop(): Promise<void> {
    const stop = this.o.limits.stop;
    this.o = { ...this.o, limits: { ...this.o.limits, stop: undefined } };
    await stop?.();
  }

  /** With allocatedTo set: refuses the ADD unless kubelet gave the relay to the pod that asks. */
  private async checkAllocated(name: string, resourceName: string | undefined, pod: PodRef | undefined): Promise<void> {
    const lookup = this.o.allocatedTo;
    if (!lookup) return;
    if (!pod) {
      throw new CniError(
        CniCode.InvalidEnv,
        `CNI_ARGS name no pod (K8S_POD_NAMESPACE, K8S_POD_NAME): this agent attaches relay "${name}" only to the pod kubelet allocated it to, and the container runtime names the pod for every pod sandbox; outside Kubernetes, turn the check off in the agent's config (cni.allocationCheck: false)`,
      );
    }
    let holders: PodRef[];
    try {
      holders = await lookup(name, resourceName);
    } catch (err) {
      throw new CniError(
        CniCode.TryAgainLater,
        `cannot ask kubelet which pod holds relay "${name}": ${errorMessage(err)}; the agent needs kubelet's pod-resources socket (chart: agent.podResources.enabled, the default) to check allocations`,
      );
    }
    if (!holders.some((h) => h.namespace === pod.namespace && h.name === pod.name)) {
      this.log.warn({ relay: name, pod: `${pod.namespace}/${pod.name}` }, 'ADD refused: kubelet did not allocate the relay to the pod');
      throw new CniError(
        CniCode.RelayNotAllocated,
        `deviceID "${name}": kubelet did not allocate this relay to pod ${pod.namespace}/${pod.name} (no container of the pod holds device "${name}"${resourceName ? ` of ${resourceName}` : ''}); ` +
          'a pod attaches only the relay the device plugin gave it: request the pool\'s resource in the pod and name it in the NetworkAttachmentDefinition\'s k8s.v1.cni.cncf.io/resourceName annotation, instead of writing deviceID into the network config',
      );
    }
  }

  private async check(req: AttachRequest): Promise<Attachment> {
    const a = this.find(req.containerId!, req.ifName!);
    if (!a || a.deviceId !== req.deviceId) {
      throw new CniError(CniCode.AttachmentMissing, `no attachment of relay "${req.deviceId}" for container ${req.containerId} (${req.ifName}) on this node: the pod's network needs a new ADD (recreate the pod)`);
    }
    if (!this.o.relays.relay(a.deviceId)) throw new CniError(CniCode.RelayNotFound, `relay "${a.deviceId}" of this attachment is gone from the node: recreate the pod`);
    const port = await this.o.relays.port(a.deviceId);
    const now = await this.o.programmer.readMac(port).catch((err: unknown) => {
      throw new CniError(CniCode.VfProgramming, `reading the VF of relay "${a.deviceId}" failed: ${errorMessage(err)}`);
    });
    if (now !== a.mac) {
      throw new CniError(CniCode.VfProgramming, `the VF of relay "${a.deviceId}" receives for ${now ?? 'no MAC'}, not the attachment's ${a.mac}: something else reprogrammed it; recreate the pod (or check \`ip link show\` of the PF)`);
    }
    if (req.mac !== undefined && req.mac !== a.mac) throw new CniError(CniCode.VfProgramming, `the attachment has MAC ${a.mac}, the network config asks for ${req.mac}: recreate the pod`);
    return { ...a };
  }

  private async del(req: AttachRequest): Promise<number> {
    const a = this.find(req.containerId!, req.ifName!);
    if (!a) return 0; // DEL of what is not there succeeds (CNI: DEL is idempotent)
    await this.release(a);
    return 1;
  }

  private async gc(req: AttachRequest): Promise<number> {
    const keep = new Set((req.valid ?? []).map((v) => `${v.containerId}/${v.ifName}`));
    let n = 0;
    for (const a of [...this.byRelay.values()]) {
      if (a.network !== (req.network ?? '') || keep.has(`${a.containerId}/${a.ifName}`)) continue;
      await this.release(a);
      n++;
    }
    return n;
  }

  /** Puts the pool's default back on the VF and forgets the attachment. */
  private async release(a: Attachment): Promise<void> {
    const relay = this.o.relays.relay(a.deviceId);
    if (relay) {
      if (a.relayConfig) {
        // the relay's own queues and MTU again; a relay that cannot take them back shows why in its status
        await this.configure(a.deviceId, undefined).catch((err: unknown) => this.log.warn({ relay: a.deviceId, err: errorMessage(err) }, 'the relay did not re-attach with its own queues and MTU'));
      }
      const port = await this.o.relays.port(a.deviceId);
      const mac = relay.specMac ?? this.defaults.get(a.deviceId);
      if (mac) await this.program(a.deviceId, port, mac, 0, true);
      else this.log.warn({ relay: a.deviceId }, 'no default MAC known for the relay: its VF keeps the pod\'s MAC');
      this.o.relays.setMac(a.deviceId, undefined);
    }
    this.byRelay.delete(a.deviceId);
    await this.save();
    this.log.info({ relay: a.deviceId, container: a.containerId, ifName: a.ifName, mac: relay?.specMac ?? this.defaults.get(a.deviceId) }, 'relay released by its pod: VF back to the pool default');
  }

  /** The pool default of a relay: spec.mac, or else the VF's MAC when first seen here. */
  private async defaultMac(name: string, specMac: string | undefined, port: VfPort): Promise<string | undefined> {
    if (specMac) return specMac.toLowerCase();
    const known = this.defaults.get(name);
    if (known) return known;
    if (this.byRelay.has(name)) return undefined;
    const found = await this.o.programmer.readMac(port).catch((err: unknown) => {
      throw new CniError(CniCode.VfProgramming, `reading the VF of relay "${name}" failed: ${errorMessage(err)}`);
    });
    if (found) this.defaults.set(name, found);
    return found;
  }

  /** Queue pairs and MTU on the relay, through the relays' own re-attach. */
  private async configure(name: string, o: { queues?: number; mtu?: number } | undefined): Promise<void> {
    if (!this.o.relays.configure) throw new CniError(CniCode.InvalidConfig, `relay "${name}": this agent cannot change a relay's queues or MTU for an attachment`);
    try {
      await this.o.relays.configure(name, o);
    } catch (err) {
      throw new CniError(CniCode.VfProgramming, `giving relay "${name}" ${o ? `queues ${o.queues ?? 'unchanged'}, MTU ${o.mtu ?? 'unchanged'}` : 'its own queues and MTU'} failed: ${errorMessage(err)}`);
    }
  }

  private async program(name: string, port: VfPort, mac: string, vlan: number, spoofchk: boolean): Promise<void> {
    try {
      await this.o.programmer.program(port, { mac, vlan, spoofchk });
    } catch (err) {
      throw new CniError(CniCode.VfProgramming, `programming the VF of relay "${name}" (${this.o.programmer.kind}) failed: ${errorMessage(err)}`);
    }
  }

  private async save(): Promise<void> {
    const path = this.o.statePath;
    if (!path) return;
    const cp: Checkpoint = { version: 1, attachments: [...this.byRelay.values()], defaults: Object.fromEntries(this.defaults) };
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.tmp`;
    await writeFile(tmp, `${JSON.stringify(cp, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  }
}

/** The queue pairs and MTU an attachment asks for that differ from the relay's own; undefined: none. */
function relayConfigOf(req: AttachRequest, relay: { queues?: number; mtu?: number }): { queues?: number; mtu?: number } | undefined {
  const o = {
    ...(req.queues !== undefined && req.queues !== relay.queues ? { queues: req.queues } : {}),
    ...(req.mtu !== undefined && req.mtu !== relay.mtu ? { mtu: req.mtu } : {}),
  };
  return Object.keys(o).length > 0 ? o : undefined;
}
