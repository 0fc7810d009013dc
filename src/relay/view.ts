// A RelayView without the relays of one origin: the device plugin does not see the relays the DRA
// driver made for claims (they belong to the claim's pod, never to a pod kubelet allocates).
import type { RelayOrigin, RelayStatus, RelayView } from './types.js';

type ChangeListener = (s: RelayStatus) => void;

export function viewWithout(view: RelayView, origin: RelayOrigin): RelayView {
  const wrapped = new Map<ChangeListener, ChangeListener>();
  return {
    list: () => view.list().filter((s) => s.origin !== origin),
    get: (name: string) => {
      const s = view.get(name);
      return s?.origin === origin ? undefined : s;
    },
    on(event: 'change' | 'removed', listener: ChangeListener | ((name: string) => void)) {
      if (event === 'removed') return view.on('removed', listener as (name: string) => void);
      const l = listener as ChangeListener;
      const w: ChangeListener = (s) => {
        if (s.origin !== origin) l(s);
      };
      wrapped.set(l, w);
      return view.on('change', w);
    },
    off(event: 'change' | 'removed', listener: ChangeListener | ((name: string) => void)) {
      if (event === 'removed') return view.off('removed', listener as (name: string) => void);
      const w = wrapped.get(listener as ChangeListener);
      wrapped.delete(listener as ChangeListener);
      return w ? view.off('change', w) : undefined;
    },
  } as RelayView;
}

/**
 * A RelayView that can be frozen for an upgrade handover (docs/upgrade.md): frozen, it shows the
 * relays as they were when it froze and passes no event on, so that the device plugin keeps
 * offering kubelet the relays that move to the new agent (Healthy, device-info files kept, an
 * Allocate answered with the same socket) instead of dropping each one as it is released.
 * Thawed (a handover given up), it shows the relays again and tells of every difference.
 */
export class FreezableView implements RelayView {
  private frozen: Map<string, RelayStatus> | undefined;
  private readonly changeListeners = new Set<ChangeListener>();
  private readonly removedListeners = new Set<(name: string) => void>();

  constructor(private readonly view: RelayView) {
    view.on('change', (s) => {
      if (!this.frozen) for (const l of this.changeListeners) l(s);
    });
    view.on('removed', (n) => {
      if (!this.frozen) for (const l of this.removedListeners) l(n);
    });
  }

  list(): RelayStatus[] {
    return this.frozen ? [...this.frozen.values()].map((s) => structuredClone(s)) : this.view.list();
  }

  get(name: string): RelayStatus | undefined {
    if (!this.frozen) return this.view.get(name);
    const s = this.frozen.get(name);
    return s && structuredClone(s);
  }

  on(event: 'change', listener: ChangeListener): this;
  on(event: 'removed', listener: (name: string) => void): this;
  on(event: 'change' | 'removed', listener: ChangeListener | ((name: string) => void)): this {
    if (event === 'change') this.changeListeners.add(listener as ChangeListener);
    else this.removedListeners.add(listener as (name: string) => void);
    return this;
  }

  off(event: 'change', listener: ChangeListener): this;
  off(event: 'removed', listener: (name: string) => void): this;
  off(event: 'change' | 'removed', listener: ChangeListener | ((name: string) => void)): this {
    if (event === 'change') this.changeListeners.delete(listener as ChangeListener);
    else this.removedListeners.delete(listener as (name: string) => void);
    return this;
  }

  get isFrozen(): boolean {
    return this.frozen !== undefined;
  }

  freeze(): void {
    this.frozen ??= new Map(this.view.list().map((s) => [s.name, s]));
  }

  thaw(): void {
    const was = this.frozen;
    if (!was) return;
    this.frozen = undefined;
    const now = this.view.list();
    const names = new Set(now.map((s) => s.name));
    for (const name of was.keys()) if (!names.has(name)) for (const l of this.removedListeners) l(name);
    for (const s of now) for (const l of this.changeListeners) l(s);
  }
}
