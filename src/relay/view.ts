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
