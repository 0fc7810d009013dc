// Rewrites a libvirt domain XML (as virt-launcher hands it to OnDefineDomain) so that each vio4wd
// interface is an <interface type='vhostuser'> on its relay's socket, with shared guest memory.
// Works on the DOM (@xmldom/xmldom): only the elements vio4wd owns are replaced or added, every
// other node (text, comments, namespaces, KubeVirt's placeholder interfaces) stays as parsed, and
// new elements take the indentation of their neighbours. The result is the same when the input
// already went through it (virt-launcher calls the hook twice per domain creation).
import { DOMParser, XMLSerializer, normalizeLineEndings, onErrorStopParsing, type Document, type Element, type Node } from '@xmldom/xmldom';
import { ValidationError } from '../util/errors.js';
import type { PciAddress } from './vmi.js';
import type { VhostMode } from './explicit.js';

/** KubeVirt names a VMI interface's domain device "ua-<name>" (user alias). */
export const USER_ALIAS_PREFIX = 'ua-';
export const DEFAULT_QUEUE_SIZE = 1024;

/** One vhost-user NIC to put into the domain. */
export interface NicPlan {
  /** VMI interface name; the device gets alias ua-<name>. */
  name: string;
  socketPath: string;
  /** QEMU's role on the socket: server (QEMU creates it, the relay connects) or client. */
  mode: VhostMode;
  /** virtio, virtio-transitional or virtio-non-transitional. */
  model: string;
  queues: number;
  rxQueueSize: number;
  txQueueSize: number;
  mac?: string;
  mtu?: number;
  pciAddress?: PciAddress;
  acpiIndex?: number;
  bootOrder?: number;
  /** Seconds between QEMU's reconnect attempts when it is the client (relay restarts). */
  reconnectSeconds?: number;
}

export interface DomainPlan {
  nics: NicPlan[];
  /** Every VMI interface name in spec order: new devices are placed to follow it. */
  vmiInterfaceOrder: string[];
}

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

function elementChildren(parent: Node, name?: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === ELEMENT_NODE && (name === undefined || (n as Element).localName === name)) out.push(n as Element);
  }
  return out;
}

function firstChild(parent: Node, name: string): Element | undefined {
  return elementChildren(parent, name)[0];
}

function nextElement(n: Node): Element | null {
  for (let s = n.nextSibling; s; s = s.nextSibling) if (s.nodeType === ELEMENT_NODE) return s as Element;
  return null;
}

/** The indentation before an element when the document is pretty-printed, else null. */
function indentOf(el: Node): string | null {
  const prev = el.previousSibling;
  if (!prev || prev.nodeType !== TEXT_NODE) return null;
  const t = prev.nodeValue ?? '';
  const nl = t.lastIndexOf('\n');
  if (nl < 0 || t.slice(nl + 1).trim() !== '') return null;
  return t.slice(nl + 1);
}

/** Layout of the document: whether it is indented, and by what unit. */
interface Layout {
  pretty: boolean;
  unit: string;
}

function detectLayout(root: Element): Layout {
  const first = elementChildren(root)[0];
  const ind = first ? indentOf(first) : null;
  if (ind === null || ind === '') return { pretty: false, unit: '' };
  return { pretty: true, unit: ind };
}

/** Depth-based indentation of an element's children (root = depth 0). */
function depthOf(el: Node): number {
  let d = 0;
  for (let p = el.parentNode; p && p.nodeType === ELEMENT_NODE; p = p.parentNode) d++;
  return d;
}

class Editor {
  constructor(
    readonly doc: Document,
    readonly layout: Layout,
  ) {}

  private indent(depth: number): string {
    return this.layout.unit.repeat(depth);
  }

  el(name: string, attrs: Record<string, string | number | undefined> = {}, children: Element[] = []): Element {
    const e = this.doc.createElement(name);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, String(v));
    for (const c of children) e.appendChild(c);
    return e;
  }

  /** Adds line breaks and indentation inside a freshly built subtree placed at `depth`. */
  format(e: Element, depth: number): Element {
    if (!this.layout.pretty) return e;
    const kids = elementChildren(e);
    if (kids.length === 0) return e;
    for (const k of kids) {
      e.insertBefore(this.doc.createTextNode('\n' + this.indent(depth + 1)), k);
      this.format(k, depth + 1);
    }
    e.appendChild(this.doc.createTextNode('\n' + this.indent(depth)));
    return e;
  }

  /** Inserts `e` into `parent` before element `ref` (or at the end), keeping the layout. */
  insert(parent: Element, e: Element, ref: Element | null): void {
    const depth = depthOf(parent) + 1;
    this.format(e, depth);
    if (!this.layout.pretty) {
      parent.insertBefore(e, ref);
      return;
    }
    if (ref) {
      parent.insertBefore(e, ref);
      parent.insertBefore(this.doc.createTextNode('\n' + this.indent(depth)), ref);
      return;
    }
    const last = parent.lastChild;
    if (last && last.nodeType === TEXT_NODE && (last.nodeValue ?? '').trim() === '') {
      parent.insertBefore(this.doc.createTextNode('\n' + this.indent(depth)), last);
      parent.insertBefore(e, last);
    } else {
      parent.appendChild(this.doc.createTextNode('\n' + this.indent(depth)));
      parent.appendChild(e);
      parent.appendChild(this.doc.createTextNode('\n' + this.indent(depth - 1)));
    }
  }

  replace(old: Element, e: Element): void {
    this.format(e, depthOf(old));
    old.parentNode!.replaceChild(e, old);
  }
}

function aliasOf(iface: Element): string | undefined {
  return firstChild(iface, 'alias')?.getAttribute('name') ?? undefined;
}

function buildInterface(ed: Editor, nic: NicPlan, keepAddress: Element | undefined): Element {
  const source = ed.el('source', { type: 'unix', path: nic.socketPath, mode: nic.mode });
  if (nic.mode === 'client') {
    // QEMU dials the relay's socket: let it redial when the relay restarts under a running VM
    source.appendChild(ed.el('reconnect', { enabled: 'yes', timeout: nic.reconnectSeconds ?? 5 }));
  }
  const kids: Element[] = [];
  if (nic.mac) kids.push(ed.el('mac', { address: nic.mac }));
  kids.push(source);
  kids.push(ed.el('model', { type: nic.model }));
  kids.push(ed.el('driver', { queues: nic.queues, rx_queue_size: nic.rxQueueSize, tx_queue_size: nic.txQueueSize }));
  if (nic.mtu !== undefined) kids.push(ed.el('mtu', { size: nic.mtu }));
  if (nic.bootOrder !== undefined) kids.push(ed.el('boot', { order: nic.bootOrder }));
  kids.push(ed.el('alias', { name: USER_ALIAS_PREFIX + nic.name }));
  // as KubeVirt does for its own NICs: no option ROM (iPXE) unless the NIC is a boot device
  if (nic.bootOrder === undefined) kids.push(ed.el('rom', { enabled: 'no' }));
  if (nic.acpiIndex !== undefined) kids.push(ed.el('acpi', { index: nic.acpiIndex }));
  if (nic.pciAddress) {
    kids.push(ed.el('address', { type: 'pci', domain: nic.pciAddress.domain, bus: nic.pciAddress.bus, slot: nic.pciAddress.slot, function: nic.pciAddress.function }));
  } else if (keepAddress) {
    // libvirt already placed this device: keep it where it is
    kids.push(keepAddress.cloneNode(false) as Element);
  }
  return ed.el('interface', { type: 'vhostuser' }, kids);
}

/** Where a new NIC goes so that devices follow the VMI's interface order. */
function insertionPoint(devices: Element, nic: NicPlan, order: string[]): Element | null {
  const ifaces = elementChildren(devices, 'interface');
  const byAlias = new Map(ifaces.map((i) => [aliasOf(i), i] as const));
  const idx = order.indexOf(nic.name);
  for (const next of order.slice(idx + 1)) {
    const e = byAlias.get(USER_ALIAS_PREFIX + next);
    if (e) return e;
  }
  // after the last VMI interface, before KubeVirt's alias-less placeholders
  const aliased = ifaces.filter((i) => aliasOf(i)?.startsWith(USER_ALIAS_PREFIX));
  const lastAliased = aliased[aliased.length - 1];
  if (lastAliased) return nextElement(lastAliased);
  if (ifaces[0]) return ifaces[0];
  // no interfaces: first device (after <emulator>, as libvirt orders them)
  const kids = elementChildren(devices);
  const emu = kids.findIndex((k) => k.localName === 'emulator');
  return kids[emu + 1] ?? null;
}

function ensureSharedMemory(ed: Editor, root: Element): void {
  let mb = firstChild(root, 'memoryBacking');
  if (!mb) {
    mb = ed.el('memoryBacking');
    const kids = elementChildren(root);
    const mem = kids.filter((k) => ['memory', 'currentMemory', 'maxMemory'].includes(k.localName ?? ''));
    const after = mem[mem.length - 1];
    ed.insert(root, mb, after ? nextElement(after) : (kids[0] ?? null));
  }
  // vhost-user needs guest RAM the relay can map: shared, and file- or memfd-backed
  if (!firstChild(mb, 'hugepages') && !firstChild(mb, 'source')) {
    ed.insert(mb, ed.el('source', { type: 'memfd' }), firstChild(mb, 'access') ?? null);
  }
  const access = firstChild(mb, 'access');
  if (access) {
    if (access.getAttribute('mode') !== 'shared') access.setAttribute('mode', 'shared');
  } else {
    ed.insert(mb, ed.el('access', { mode: 'shared' }), null);
  }
  // a NUMA cell's own memAccess overrides the domain's; private would break vhost-user
  const numa = firstChild(root, 'cpu') && firstChild(firstChild(root, 'cpu')!, 'numa');
  for (const cell of numa ? elementChildren(numa, 'cell') : []) {
    const m = cell.getAttribute('memAccess');
    if (m !== null && m !== 'shared') cell.setAttribute('memAccess', 'shared');
  }
}

/** Parses domain XML; the error says what is wrong with it. */
export function parseDomain(xml: string): Document {
  let doc: Document;
  try {
    doc = new DOMParser({ onError: onErrorStopParsing }).parseFromString(xml, 'text/xml');
  } catch (err) {
    throw new ValidationError('domainXML', `not well-formed XML: ${(err as Error).message}`);
  }
  const root = doc.documentElement;
  if (!root || root.localName !== 'domain') {
    throw new ValidationError('domainXML', `root element is <${root?.localName ?? ''}>, expected a libvirt <domain>`);
  }
  return doc;
}

/** Where the start tag that begins at `off` ends, and whether it closes itself (`<x .../>`). */
function startTagSelfCloses(src: string, off: number): boolean | undefined {
  if (src[off] !== '<') return undefined;
  let quote = '';
  for (let i = off + 1; i < src.length; i++) {
    const c = src[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '>') {
      return src[i - 1] === '/';
    }
  }
  return undefined;
}

/**
 * XMLSerializer writes every childless element as <x/>. Go's encoding/xml (virt-launcher) writes
 * <x></x>. To leave untouched elements as they were written, an element that had an end tag in
 * the source gets an empty text child, which makes the serializer write the end tag again.
 * Returns the style the source used for childless elements ('end-tag' when it never self-closes).
 */
function keepEndTags(doc: Document, src: string): 'end-tag' | 'self-closing' {
  const lineStarts = [0];
  for (let i = src.indexOf('\n'); i >= 0; i = src.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  let selfClosing = 0;
  const walk = (el: Element): void => {
    const kids = elementChildren(el);
    if (!el.firstChild && el.lineNumber !== undefined && el.columnNumber !== undefined) {
      const off = (lineStarts[el.lineNumber - 1] ?? 0) + el.columnNumber - 1;
      const closes = startTagSelfCloses(src, off);
      if (closes === false) el.appendChild(doc.createTextNode(''));
      else if (closes === true) selfClosing++;
    }
    kids.forEach(walk);
  };
  walk(doc.documentElement!);
  return selfClosing === 0 ? 'end-tag' : 'self-closing';
}

/** New childless elements follow the source's style. */
function applyEndTagStyle(doc: Document, style: 'end-tag' | 'self-closing'): void {
  if (style !== 'end-tag') return;
  const walk = (el: Element): void => {
    if (!el.firstChild) el.appendChild(doc.createTextNode(''));
    elementChildren(el).forEach(walk);
  };
  walk(doc.documentElement!);
}

/** Applies the plan to the domain XML and returns the new text. */
export function rewriteDomain(xml: string, plan: DomainPlan): string {
  if (plan.nics.length === 0) return xml;
  const doc = parseDomain(xml);
  const root = doc.documentElement!;
  const style = keepEndTags(doc, normalizeLineEndings(xml));
  const ed = new Editor(doc, detectLayout(root));
  let devices = firstChild(root, 'devices');
  if (!devices) {
    devices = ed.el('devices');
    ed.insert(root, devices, firstChild(root, 'clock') ?? null);
  }
  for (const nic of plan.nics) {
    const existing = elementChildren(devices, 'interface').find((i) => aliasOf(i) === USER_ALIAS_PREFIX + nic.name);
    const oldAddress = existing ? firstChild(existing, 'address') : undefined;
    const iface = buildInterface(ed, nic, oldAddress?.getAttribute('type') === 'pci' ? oldAddress : undefined);
    if (existing) ed.replace(existing, iface);
    else ed.insert(devices, iface, insertionPoint(devices, nic, plan.vmiInterfaceOrder));
  }
  ensureSharedMemory(ed, root);
  applyEndTagStyle(doc, style);
  return new XMLSerializer().serializeToString(doc);
}
