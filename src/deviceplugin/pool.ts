// A device-plugin pool: one extended resource name, one plugin socket, one kubelet registration.
import { ValidationError } from '../util/errors.js';
import { DNS_LABEL } from '../util/identifiers.js';
import { DEFAULT_RESOURCE_NAME } from './constants.js';

export interface Pool {
  /** "<domain>/<name>", e.g. vio4wd.io/vhostuser. */
  resourceName: string;
  domain: string;
  name: string;
  /** The plugin's socket file name in the device-plugin directory: "<domain>_<name>.sock". */
  socketName: string;
  /** The pool's part of environment variable names: VIO4WD_<envKey>_DEVICES. */
  envKey: string;
}

const DOMAIN_RE = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** The pool a relay belongs to: its resourceName, or the default pool when that is empty. */
export function resourceNameOf(status: { resourceName?: string }): string {
  return status.resourceName || DEFAULT_RESOURCE_NAME;
}

/** Upper-cases and replaces every character outside [A-Z0-9] with "_" (for env var names). */
export function envName(s: string): string {
  return s.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * Checks a relay's resourceName as kubelet would (an extended resource name outside the
 * kubernetes.io domains) and derives the pool's socket and env names. Empty means the default.
 */
export function parsePool(resourceName: string | undefined, field = 'resourceName'): Pool {
  const rn = resourceName === undefined || resourceName === '' ? DEFAULT_RESOURCE_NAME : resourceName;
  const slash = rn.indexOf('/');
  const domain = slash < 0 ? '' : rn.slice(0, slash);
  const name = slash < 0 ? '' : rn.slice(slash + 1);
  const fix = `use "<domain>/<name>", e.g. ${DEFAULT_RESOURCE_NAME} or vio4wd.io/<pool>`;
  if (!domain || !name) throw new ValidationError(field, `"${rn}" is not an extended resource name: ${fix}`);
  if (domain.length > 253 || !DOMAIN_RE.test(domain)) {
    throw new ValidationError(field, `domain "${domain}" of "${rn}" is not a lower-case DNS name: ${fix}`);
  }
  if (domain === 'kubernetes.io' || domain.endsWith('.kubernetes.io') || domain === 'k8s.io' || domain.endsWith('.k8s.io')) {
    throw new ValidationError(field, `domain "${domain}" of "${rn}" is reserved for Kubernetes: ${fix}`);
  }
  if (name.length > 63 || !NAME_RE.test(name)) {
    throw new ValidationError(field, `name "${name}" of "${rn}" must be at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric: ${fix}`);
  }
  return {
    resourceName: rn,
    domain,
    name,
    // "_" never occurs in a domain, so the first one splits the name back unambiguously
    socketName: `${domain}_${name}.sock`,
    envKey: envName(domain === 'vio4wd.io' ? name : `${domain}_${name}`),
  };
}
