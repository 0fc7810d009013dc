// Generated from proto/virtioforwarder/virtioforwarder.proto by src/control/protogen.ts: do not edit.
// Regenerate with: npx tsx src/control/protogen.ts
import type { Long } from 'protobufjs';

/** virtioforwarder.PortControlRequest (proto2). */
export interface PortControlRequest {
  /** 1: required Op */
  op: PortControlRequest_Op;
  /** 2: repeated PciAddress */
  pci_addrs?: PortControlRequest_PciAddress[];
  /** 3: optional uint32 */
  virtio_id?: number;
  /** 4: optional bool (default true) */
  conditional?: boolean;
  /** 5: optional string */
  name?: string;
  /** 6: optional uint32 */
  mode?: number;
  /** 7: optional string */
  vhost_path?: string;
}

export const PortControlRequest_Op = {
  ADD: 0,
  REMOVE: 1,
  ADD_SOCK: 2,
  REMOVE_SOCK: 3,
  QUERY_PCI: 4,
} as const;
export type PortControlRequest_Op = (typeof PortControlRequest_Op)[keyof typeof PortControlRequest_Op];

/** virtioforwarder.PortControlRequest.PciAddress (proto2). */
export interface PortControlRequest_PciAddress {
  /** 1: required uint32 */
  domain: number;
  /** 2: required uint32 */
  bus: number;
  /** 3: required uint32 */
  slot: number;
  /** 4: required uint32 */
  function: number;
}

/** virtioforwarder.PortControlResponse (proto2). */
export interface PortControlResponse {
  /** 4: required Status */
  status: PortControlResponse_Status;
  /** 5: optional int32 */
  error_code?: number;
  /** 6: optional string */
  error_code_source?: string;
  /** 7: optional string */
  query_string?: string;
}

export const PortControlResponse_Status = {
  ERROR: 0,
  OK: 1,
} as const;
export type PortControlResponse_Status = (typeof PortControlResponse_Status)[keyof typeof PortControlResponse_Status];

/** virtioforwarder.StatsRequest (proto2). */
export interface StatsRequest {
  /** 1: repeated uint32 */
  relay?: number[];
  /** 2: optional bool (default true) */
  include_inactive?: boolean;
  /** 3: optional uint32 (default 0) */
  delay?: number;
  /** 100: optional bool (default false) */
  vio4wd_extended?: boolean;
}

/** virtioforwarder.StatsResponse (proto2). */
export interface StatsResponse {
  /** 1: required Status */
  status: StatsResponse_Status;
  /** 2: repeated RelayState */
  relay?: RelayState[];
  /** 100: repeated Worker */
  worker?: StatsResponse_Worker[];
}

export const StatsResponse_Status = {
  OK: 0,
  EBADR: 400,
  E2BIG: 413,
  ENOMEM: 500,
} as const;
export type StatsResponse_Status = (typeof StatsResponse_Status)[keyof typeof StatsResponse_Status];

/** virtioforwarder.StatsResponse.Worker (proto2). */
export interface StatsResponse_Worker {
  /** 1: required int32 */
  cpu: number;
  /** 2: optional uint32 */
  directions?: number;
  /** 3: optional uint64 */
  busy_cycles?: number | Long;
  /** 4: optional uint64 */
  idle_cycles?: number | Long;
  /** 5: optional uint64 */
  packets?: number | Long;
  /** 6: optional uint64 */
  dropped?: number | Long;
  /** 7: optional float */
  busy_ratio?: number;
  /** 8: optional float */
  pkt_rate?: number;
  /** 9: optional float */
  cycles_per_pkt?: number;
}

/** virtioforwarder.RelayState (proto2). */
export interface RelayState {
  /** 1: required uint32 */
  id: number;
  /** 2: required bool */
  active: boolean;
  /** 3: optional string */
  ident?: string;
  /** 4: optional CPU */
  cpu?: RelayState_CPU;
  /** 5: required VHOST */
  vhost: RelayState_VHOST;
  /** 6: optional VF */
  vf?: RelayState_VF;
  /** 7: required VFtoVM */
  vf_to_vm: RelayState_VFtoVM;
  /** 8: required VMtoVF */
  vm_to_vf: RelayState_VMtoVF;
  /** 9: required uint32 */
  socket_id: number;
  /** 100: optional VFPort */
  vf_port?: RelayState_VFPort;
}

/** virtioforwarder.RelayState.CPU (proto2). */
export interface RelayState_CPU {
  /** 1: optional int32 */
  vf_to_vm?: number;
  /** 2: optional int32 */
  vm_to_vf?: number;
}

/** virtioforwarder.RelayState.VHOST (proto2). */
export interface RelayState_VHOST {
  /** 1: required string */
  vhost_socket_name: string;
}

/** virtioforwarder.RelayState.VF (proto2). */
export interface RelayState_VF {
  /** 1: optional string */
  pci_addr_str?: string;
}

/** virtioforwarder.RelayState.VFtoVM (proto2). */
export interface RelayState_VFtoVM {
  /** 1: required bool */
  active: boolean;
  /** 2: required string */
  internal_state: string;
  /** 3: optional uint64 */
  pkts_rx_from_vf?: number | Long;
  /** 4: optional uint64 */
  bytes_rx_from_vf?: number | Long;
  /** 5: optional uint64 */
  pkts_tx_to_vm?: number | Long;
  /** 6: optional uint64 */
  bytes_tx_to_vm?: number | Long;
  /** 7: optional uint64 */
  pkts_dropped_vm_queue_full?: number | Long;
  /** 8: optional uint64 */
  bytes_dropped_vm_queue_full?: number | Long;
  /** 9: optional uint64 */
  pkts_dropped_vm_not_connected?: number | Long;
  /** 10: optional uint64 */
  bytes_dropped_vm_not_connected?: number | Long;
  /** 11: required float */
  pkt_rate_rx_from_vf: number;
  /** 12: required float */
  byte_rate_rx_from_vf: number;
  /** 13: required float */
  pkt_rate_tx_to_vm: number;
  /** 14: required float */
  byte_rate_tx_to_vm: number;
}

/** virtioforwarder.RelayState.VMtoVF (proto2). */
export interface RelayState_VMtoVF {
  /** 1: required bool */
  active: boolean;
  /** 2: required string */
  internal_state: string;
  /** 3: optional uint64 */
  pkts_rx_from_vm?: number | Long;
  /** 4: optional uint64 */
  bytes_rx_from_vm?: number | Long;
  /** 5: optional uint64 */
  pkts_tx_to_vf?: number | Long;
  /** 6: optional uint64 */
  bytes_tx_to_vf?: number | Long;
  /** 7: optional uint64 */
  pkts_dropped_vf_queue_full?: number | Long;
  /** 8: optional uint64 */
  bytes_dropped_vf_queue_full?: number | Long;
  /** 9: optional uint64 */
  pkts_dropped_vf_not_connected?: number | Long;
  /** 10: optional uint64 */
  bytes_dropped_vf_not_connected?: number | Long;
  /** 11: required float */
  pkt_rate_rx_from_vm: number;
  /** 12: required float */
  byte_rate_rx_from_vm: number;
  /** 13: required float */
  pkt_rate_tx_to_vf: number;
  /** 14: required float */
  byte_rate_tx_to_vf: number;
}

/** virtioforwarder.RelayState.VFPort (proto2). */
export interface RelayState_VFPort {
  /** 1: optional uint64 */
  rx_packets?: number | Long;
  /** 2: optional uint64 */
  tx_packets?: number | Long;
  /** 3: optional uint64 */
  rx_bytes?: number | Long;
  /** 4: optional uint64 */
  tx_bytes?: number | Long;
  /** 5: optional uint64 */
  rx_missed?: number | Long;
  /** 6: optional uint64 */
  rx_errors?: number | Long;
  /** 7: optional uint64 */
  tx_errors?: number | Long;
  /** 8: optional uint64 */
  rx_nombuf?: number | Long;
}

/** virtioforwarder.ConfigRequest (proto2). */
export type ConfigRequest = Record<string, never>;

/** virtioforwarder.ConfigResponse (proto2). */
export interface ConfigResponse {
  /** 1: required Status */
  status: ConfigResponse_Status;
  /** 5: repeated RelayCPU */
  relay_cpu_map?: ConfigResponse_RelayCPU[];
}

export const ConfigResponse_Status = {
  OK: 0,
  EBADR: 400,
} as const;
export type ConfigResponse_Status = (typeof ConfigResponse_Status)[keyof typeof ConfigResponse_Status];

/** virtioforwarder.ConfigResponse.RelayCPU (proto2). */
export interface ConfigResponse_RelayCPU {
  /** 1: required int32 */
  relay_number: number;
  /** 2: required int32 */
  vf2virtio_cpu: number;
  /** 3: required int32 */
  virtio2vf_cpu: number;
}

/** virtioforwarder.CoreSchedRequest (proto2). */
export interface CoreSchedRequest {
  /** 1: required Op */
  op: CoreSchedRequest_Op;
  /** 2: repeated RelayCPU */
  relay_cpu_map?: CoreSchedRequest_RelayCPU[];
}

export const CoreSchedRequest_Op = {
  UPDATE: 0,
  GET_EAL_CORES: 1,
} as const;
export type CoreSchedRequest_Op = (typeof CoreSchedRequest_Op)[keyof typeof CoreSchedRequest_Op];

/** virtioforwarder.CoreSchedRequest.RelayCPU (proto2). */
export interface CoreSchedRequest_RelayCPU {
  /** 1: required int32 */
  relay_number: number;
  /** 2: required int32 */
  vf2virtio_cpu: number;
  /** 3: required int32 */
  virtio2vf_cpu: number;
}

/** virtioforwarder.CoreSchedResponse (proto2). */
export interface CoreSchedResponse {
  /** 4: required Status */
  status: CoreSchedResponse_Status;
  /** 5: optional int32 */
  error_code?: number;
  /** 6: optional string */
  error_code_source?: string;
  /** 7: repeated uint32 */
  eal_cores?: number[];
}

export const CoreSchedResponse_Status = {
  ERROR: 0,
  OK: 1,
} as const;
export type CoreSchedResponse_Status = (typeof CoreSchedResponse_Status)[keyof typeof CoreSchedResponse_Status];

/** Every message by its full protobuf name. */
export interface WireMessages {
  'virtioforwarder.PortControlRequest': PortControlRequest;
  'virtioforwarder.PortControlRequest.PciAddress': PortControlRequest_PciAddress;
  'virtioforwarder.PortControlResponse': PortControlResponse;
  'virtioforwarder.StatsRequest': StatsRequest;
  'virtioforwarder.StatsResponse': StatsResponse;
  'virtioforwarder.StatsResponse.Worker': StatsResponse_Worker;
  'virtioforwarder.RelayState': RelayState;
  'virtioforwarder.RelayState.CPU': RelayState_CPU;
  'virtioforwarder.RelayState.VHOST': RelayState_VHOST;
  'virtioforwarder.RelayState.VF': RelayState_VF;
  'virtioforwarder.RelayState.VFtoVM': RelayState_VFtoVM;
  'virtioforwarder.RelayState.VMtoVF': RelayState_VMtoVF;
  'virtioforwarder.RelayState.VFPort': RelayState_VFPort;
  'virtioforwarder.ConfigRequest': ConfigRequest;
  'virtioforwarder.ConfigResponse': ConfigResponse;
  'virtioforwarder.ConfigResponse.RelayCPU': ConfigResponse_RelayCPU;
  'virtioforwarder.CoreSchedRequest': CoreSchedRequest;
  'virtioforwarder.CoreSchedRequest.RelayCPU': CoreSchedRequest_RelayCPU;
  'virtioforwarder.CoreSchedResponse': CoreSchedResponse;
}
