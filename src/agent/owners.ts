// User and group names to numeric ids, from /etc/passwd and /etc/group (no libc lookup in Node).
import { readFile } from 'node:fs/promises';
import { ValidationError } from '../util/errors.js';

export async function resolveOwner(v: string | number, kind: 'user' | 'group', field: string, etc = '/etc'): Promise<number> {
  if (typeof v === 'number') return v;
  if (/^\d+$/.test(v)) return Number(v);
  const file = kind === 'user' ? 'passwd' : 'group';
  const text = await readFile(`${etc}/${file}`, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === v && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
  }
  throw new ValidationError(field, `no ${kind} named "${v}" on this host: create it or give a numeric id`);
}
