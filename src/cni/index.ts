// vio4wd-cni: the CNI plugin (plugin.ts), and the node agent's side of it: the attachment API
// (server.ts, protocol.ts) and the attachments it keeps (attachments.ts).
export { runPlugin, askAgent, SUPPORTED_VERSIONS, type AskAgent, type PluginIo, type PluginOutcome } from './plugin.js';
export { AttachServer, type AttachServerOptions } from './server.js';
export { AttachmentService, type AttachRelays, type AttachmentServiceOptions, type VfLimitsSource } from './attachments.js';
export {
  AGENT_SOCKET_ENV,
  DEFAULT_AGENT_SOCKET,
  PROTOCOL_VERSION,
  CniCode,
  CniError,
  parseRequest,
  type AttachRequest,
  type AttachReply,
  type Attachment,
} from './protocol.js';
export { cniMain } from './main.js';
