// What a pod attachment may set on its VF through the PF (vio4wd-cni's network config, a DRA
// claim's RelayConfig): the VLAN the PF tags it onto and whether the PF checks its source MAC.
// Both are the admin's to allow: a VLAN reaches that VLAN's network (another tenant's), spoof
// checking off lets the VM send as anyone. Pure functions: the attachment service asks them
// before anything touches the VF, for every path that programs one.
/** What an attachment asks the PF to set on its VF. */
export interface VfSettingsRequest {
  /** 802.1Q VLAN id, 0 = untagged */
  vlan: number;
  spoofchk: boolean;
}

/** The admin's limits on VfSettingsRequest, and where they come from (for messages). */
export interface VfLimits {
  /** inclusive VLAN id ranges the VF may be put on; [0, 0] is untagged */
  vlans: readonly (readonly [number, number])[];
  /** the ranges as written, for messages */
  vlansText: readonly string[];
  /** may an attachment turn spoof checking off? */
  spoofchkOff: boolean;
  /** e.g. `VirtioForwarderPolicy team-a spec.limits` or `the agent config's sriov.vfLimits` */
  where: string;
  /** who changes them: `the cluster admin` or `the node admin` */
  who: string;
  /** set when no single set of limits applies (two policies): only the defaults pass */
  note?: string;
}

/** The untagged network only, spoof checking always on: the limits nobody wrote. */
export const DEFAULT_ALLOWED_VLANS: readonly string[] = ['0'];

/** The admin's written limits: spec.limits of a VirtioForwarderPolicy, or sriov.vfLimits of the agent config. */
export interface WrittenVfLimits {
  allowedVlans?: readonly (string | number)[];
  allowSpoofchkOff?: boolean;
}

const RANGE = /^\s*(\d{1,4})\s*(?:-\s*(\d{1,4})\s*)?$/;

/**
 * Parses allowedVlans: VLAN ids 0..4094 (0: untagged) and ranges "a-b". Throws with the entry and
 * the field named; `field` is the list's path, e.g. spec.limits.allowedVlans.
 */
export function parseVlanRanges(list: readonly (string | number)[], field: string): [number, number][] {
  return list.map((entry, i) => {
    const m = RANGE.exec(String(entry));
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo > 4094 || hi > 4094 || hi < lo) {
      throw new Error(`${field}[${i}]: ${JSON.stringify(entry)} is not a VLAN id or range: write 0 (untagged), 1..4094, or "100-199"`);
    }
    return [lo, hi];
  });
}

/** Limits from what an admin wrote; a list that does not parse allows only the defaults (and says why). */
export function vfLimitsOf(written: WrittenVfLimits | undefined, where: string, who: string): VfLimits {
  const text = (written?.allowedVlans ?? DEFAULT_ALLOWED_VLANS).map(String);
  try {
    return { vlans: parseVlanRanges(text, `${where}.allowedVlans`), vlansText: text, spoofchkOff: written?.allowSpoofchkOff === true, where, who };
  } catch (err) {
    return { vlans: [[0, 0]], vlansText: ['0'], spoofchkOff: false, where, who, note: (err as Error).message };
  }
}

/** Is `vlan` in the ranges? */
export function vlanAllowed(vlan: number, limits: Pick<VfLimits, 'vlans'>): boolean {
  return limits.vlans.some(([lo, hi]) => vlan >= lo && vlan <= hi);
}

/**
 * Decides a request against the limits: undefined when allowed, else the message, which names
 * the field and value asked for, the limit (the policy and its field) and the fix. `subject`
 * names what asks, e.g. `relay "r-a" of pool vio4wd.io/x`.
 */
export function vfSettingsDenied(req: VfSettingsRequest, limits: VfLimits, subject: string): string | undefined {
  const vlanOk = vlanAllowed(req.vlan, limits);
  const spoofOk = req.spoofchk || limits.spoofchkOff;
  if (vlanOk && spoofOk) return undefined;
  const asked = !vlanOk ? `vlan: ${req.vlan === 0 ? '0 (untagged)' : req.vlan}` : 'spoofchk: false (spoof checking off)';
  // no single policy applies: say so, whatever was asked
  if (limits.note) return `${asked} is not allowed for ${subject}: ${limits.note}; until then only untagged VFs with spoof checking on`;
  if (!vlanOk) {
    const only = limits.vlansText.length === 1 && limits.vlansText[0] === '0' ? ' (untagged only)' : '';
    return (
      `${asked} is not allowed for ${subject}: ${limits.where}.allowedVlans allows ${limits.vlansText.join(', ')}${only}; ` +
      `use an allowed VLAN${req.vlan === 0 ? ' (set vlan in the network config or the claim)' : ''}, or ask ${limits.who} to add ${req.vlan} to ${limits.where}.allowedVlans`
    );
  }
  return `${asked} is not allowed for ${subject}: ${limits.where}.allowSpoofchkOff is not true; leave spoofchk out (on), or ask ${limits.who} to set ${limits.where}.allowSpoofchkOff: true`;
}
