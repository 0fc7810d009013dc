// KubeVirt integration: a network binding plugin (hook sidecar) that gives VMs the relay's
// vhost-user socket. Public surface of the role.
export { BindingSidecar, DEFAULT_HOOKS_DIR, DEFAULT_SOCKET_NAME, HOOK_NAME, type SidecarOptions } from './server.js';
export { defineDomain, DEFAULT_BINDING_NAME, type BindingOptions, type DefineResult } from './binding.js';
export { rewriteDomain, parseDomain, type DomainPlan, type NicPlan } from './domain.js';
export {
  resolveSockets,
  SocketNotFoundError,
  DEFAULT_NETWORK_INFO_PATH,
  DEFAULT_DRA_METADATA_DIR,
  type ResolveOptions,
  type SocketInfo,
} from './sources.js';
export { parseInterfaceSpec, parseInterfacesEnv, INTERFACES_ANNOTATION, type ExplicitInterface } from './explicit.js';
export { loadHookServices, HOOK_VERSIONS, type HookServices } from './protos.js';
export { HookClient, type HookInfo } from './client.js';
