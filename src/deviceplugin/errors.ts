// The device plugin's request errors, each mapped onto the gRPC status kubelet receives.
import { status } from '@grpc/grpc-js';
import { VioError } from '../util/errors.js';

export type DevicePluginErrorCode = 'EUNKNOWNDEVICE' | 'EUNHEALTHY' | 'EINVAL' | 'EDEVINFO' | 'EFORBIDDEN' | 'ENOHOLDER';

const GRPC_STATUS: Record<DevicePluginErrorCode, status> = {
  EUNKNOWNDEVICE: status.NOT_FOUND,
  EUNHEALTHY: status.FAILED_PRECONDITION,
  EINVAL: status.INVALID_ARGUMENT,
  EDEVINFO: status.INTERNAL,
  EFORBIDDEN: status.PERMISSION_DENIED,
  ENOHOLDER: status.FAILED_PRECONDITION,
};

export class DevicePluginError extends VioError {
  declare readonly code: DevicePluginErrorCode;
  readonly grpcStatus: status;
  constructor(code: DevicePluginErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'DevicePluginError';
    this.grpcStatus = GRPC_STATUS[code];
  }
}
