// User and group names to numeric ids through NSS (getent: /etc files, LDAP, SSSD, systemd
// users alike), as libc would resolve them; numbers pass through.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ValidationError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { RelaySpec } from '../relay/types.js';

export interface ResolveOwnerOptions {
  /** getent binary (default: getent on PATH) */
  getent?: string;
  /** when getent itself is missing: read passwd/group from this folder (default /etc) */
  etc?: string;
}

export async function resolveOwner(v: string | number, kind: 'user' | 'group', field: string, opts: ResolveOwnerOptions = {}): Promise<number> {
  if (typeof v === 'number') return v;
  if (/^\d+$/.test(v)) return Number(v);
  const db = kind === 'user' ? 'passwd' : 'group';
  const line = await getent(opts.getent ?? 'getent', db, v).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    const text = await readFile(`${opts.etc ?? '/etc'}/${db}`, 'utf8').catch(() => '');
    return text.split('\n').find((l) => l.split(':')[0] === v);
  });
  const id = line?.split(':')[2];
  if (id !== undefined && /^\d+$/.test(id)) return Number(id);
  throw new ValidationError(field, `no ${kind} named "${v}" on this host (looked up through NSS: getent ${db}): create it or give a numeric id`);
}

/** The entry's line, or undefined when NSS has none (getent exits 2). */
function getent(bin: string, db: string, key: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    execFile(bin, [db, '--', key], { timeout: 5000 }, (err, stdout) => {
      if (!err) return resolve(stdout.split('\n')[0]);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
      if ((err as { code?: unknown }).code === 2) return resolve(undefined);
      reject(new Error(`getent ${db} ${key} failed: ${err.message}`));
    });
  });
}

/** Applies the relays of the config: a bad one is logged and marked Failed; the others start
 *  regardless. Owner and group names go through NSS here (the engine takes numbers). */
export async function applyConfigRelays(specs: RelaySpec[], relays: { apply(spec: RelaySpec): unknown }, log: Logger): Promise<void> {
  for (const spec of specs) {
    try {
      const vu = spec.vhostUser;
      if (typeof vu.owner === 'string') vu.owner = await resolveOwner(vu.owner, 'user', `relay ${spec.name}: vhostUser.owner`);
      if (typeof vu.group === 'string') vu.group = await resolveOwner(vu.group, 'group', `relay ${spec.name}: vhostUser.group`);
      relays.apply(spec);
    } catch (err) {
      log.error({ relay: spec.name, err: errorMessage(err) }, 'relay in the config was rejected');
    }
  }
}
