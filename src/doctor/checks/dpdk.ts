// DPDK present, and which version: libdpdk.pc (development files the native engine builds
// against), else the Debian package database, else the librte_eal soname.
import type { Check, CheckResult } from '../types.js';
import type { Host } from '../host.js';

const LIB_DIRS = ['usr/lib', 'usr/lib64', 'usr/local/lib', 'usr/local/lib64'];
/** Oldest DPDK the engine is built and tested with (Debian 12's). */
export const MIN_DPDK = '22.11';

function libDirs(host: Host): string[] {
  const dirs: string[] = [];
  for (const base of LIB_DIRS) {
    dirs.push(base);
    for (const sub of host.list(base)) if (/-linux-gnu/.test(sub)) dirs.push(`${base}/${sub}`);
  }
  return dirs;
}

function fromPkgConfig(host: Host): { version: string; file: string } | null {
  const dirs = [...libDirs(host).map((d) => `${d}/pkgconfig`), 'usr/share/pkgconfig'];
  for (const d of dirs) {
    const text = host.text(`${d}/libdpdk.pc`);
    const m = text && /^Version:\s*(\S+)/m.exec(text);
    if (m) return { version: m[1]!, file: `/${d}/libdpdk.pc` };
  }
  return null;
}

function fromDpkg(host: Host): { version: string; pkg: string } | null {
  const status = host.text('var/lib/dpkg/status');
  if (!status) return null;
  for (const stanza of status.split(/\n\s*\n/)) {
    const pkg = /^Package:\s*(\S+)/m.exec(stanza)?.[1];
    if (!pkg || !/^(dpdk|librte-eal\d+(\.\d+)?)$/.test(pkg)) continue;
    if (!/^Status:.*\binstalled\b/m.test(stanza) || /^Status:.*not-installed/m.test(stanza)) continue;
    const full = /^Version:\s*(\S+)/m.exec(stanza)?.[1];
    // "22.11.11-0+deb12u1" -> "22.11.11" (epoch and Debian revision dropped)
    if (full) return { version: full.replace(/^\d+:/, '').replace(/-[^-]*$/, ''), pkg };
  }
  return null;
}

function fromSoname(host: Host): { version: string; file: string } | null {
  for (const d of libDirs(host)) {
    for (const f of host.list(d)) {
      const m = /^librte_eal\.so\.(\d+)$/.exec(f);
      // ABI N is the one of DPDK (N-1).11: the LTS release that opens each ABI
      if (m) return { version: `${Number(m[1]) - 1}.11 (ABI ${m[1]})`, file: `/${d}/${f}` };
    }
  }
  return null;
}

function older(version: string, min: string): boolean {
  const a = version.split(/[.\s]/).map((x) => parseInt(x, 10));
  const b = min.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    const x = a[i] ?? 0;
    if (Number.isNaN(x)) return false;
    if (x !== b[i]) return x < b[i]!;
  }
  return false;
}

export const checkDpdk: Check = ({ host }) => {
  const pc = fromPkgConfig(host);
  const pkg = fromDpkg(host);
  const so = fromSoname(host);
  const install = 'apt-get install dpdk libdpdk-dev pkg-config (or run scripts/bootstrap)';
  let r: CheckResult;
  if (pc) {
    r = { id: 'dpdk', status: 'PASS', message: `DPDK ${pc.version} (${pc.file}${so ? `, runtime ${so.file}` : ''})` };
    if (older(pc.version, MIN_DPDK)) {
      r = { ...r, status: 'WARN', message: `${r.message} is older than ${MIN_DPDK}, the oldest DPDK vio4wd is tested with`, fix: `install DPDK ${MIN_DPDK} or newer` };
    }
    r.details = { version: pc.version, source: 'pkg-config', file: pc.file, package: pkg?.version ?? null, eal: so?.file ?? null };
  } else if (pkg || so) {
    const version = pkg?.version ?? so!.version;
    r = {
      id: 'dpdk',
      status: 'WARN',
      message: `DPDK runtime ${version} (${pkg ? `Debian package ${pkg.pkg}` : so!.file}) but no libdpdk.pc: the native engine cannot be built here`,
      fix: 'apt-get install libdpdk-dev pkg-config',
      details: { version, source: pkg ? 'dpkg' : 'soname', eal: so?.file ?? null },
    };
  } else {
    r = {
      id: 'dpdk',
      status: 'FAIL',
      message: 'no DPDK found (no libdpdk.pc, no dpdk package, no librte_eal.so.N): the relay engine cannot run',
      fix: install,
      details: { version: null },
    };
  }
  return [r];
};
