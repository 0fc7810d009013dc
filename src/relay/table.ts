// The node's relays by name and by id, and the claims a new or changed relay makes on them: an
// id in range that no other relay has, and a socket no other relay uses.
import { ValidationError, VioError } from '../util/errors.js';

interface Claimant {
  spec: { name: string };
  id: number;
  socketPath: string;
}

export class RelayTable<E extends Claimant> {
  private readonly byName = new Map<string, E>();
  private readonly byId = new Map<number, E>();

  constructor(private readonly maxRelays: number) {}

  get(name: string): E | undefined {
    return this.byName.get(name);
  }

  getById(id: number): E | undefined {
    return this.byId.get(id);
  }

  values(): E[] {
    return [...this.byName.values()];
  }

  /** Adds e, or files it under its (new) id. */
  set(e: E, previousId?: number): void {
    if (previousId !== undefined && previousId !== e.id && this.byId.get(previousId) === e) this.byId.delete(previousId);
    this.byName.set(e.spec.name, e);
    this.byId.set(e.id, e);
  }

  /** Forgets e (not a newer relay of the same name or id). */
  delete(e: E): boolean {
    if (this.byName.get(e.spec.name) !== e) return false;
    this.byName.delete(e.spec.name);
    if (this.byId.get(e.id) === e) this.byId.delete(e.id);
    return true;
  }

  /** The lowest free id; virtio-forwarder numbers relays from 1. */
  freeId(): number {
    for (let id = 1; id < this.maxRelays; id++) if (!this.byId.has(id)) return id;
    throw new VioError('ENOSPC', `all ${this.maxRelays - 1} relay ids are in use`);
  }

  /** Throws a ValidationError naming the field when relay `name` may not take id or socketPath. */
  checkClaim(name: string, id: number, socketPath: string): void {
    if (id < 0 || id >= this.maxRelays) {
      throw new ValidationError('id', `relay id ${id} is out of range: use 0..${this.maxRelays - 1}`);
    }
    const other = this.byId.get(id);
    if (other && other.spec.name !== name) {
      throw new ValidationError('id', `relay id ${id} is already used by relay "${other.spec.name}": pick another id or remove that relay`);
    }
    for (const e of this.byName.values()) {
      if (e.spec.name !== name && e.socketPath === socketPath) {
        throw new ValidationError('vhostUser.socketPath', `socket ${socketPath} is already used by relay "${e.spec.name}": give this relay its own socket path`);
      }
    }
  }
}
