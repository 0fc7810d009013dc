// SPDX-License-Identifier: Apache-2.0
// Thin node-addon-api binding over the C engine (vio.h): converts arguments and results.
// Commands go to the engine's control thread and settle a Promise; their completions and the
// engine's events come back to the JS thread through ONE ThreadSafeFunction. Queries are
// synchronous. Errors are JS Errors with a stable `code` (EngineErrorCode in types.ts).
#include <napi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <memory>
#include <pthread.h>
#include <string>

#include "vio.h"

namespace {

struct Msg {
  bool done;  // true: a command completed; false: an engine event
  vio_event ev;
  vio_cmd *cmd;
};

struct Pending {
  Napi::Promise::Deferred deferred;
  bool owns_tsfn = false;  // the start() that created the TSFN releases it when it fails
  explicit Pending(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void CallJs(Napi::Env env, Napi::Function onEvent, std::nullptr_t *, Msg *m);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Msg, CallJs>;

Tsfn g_tsfn;
bool g_tsfn_live = false;           // JS thread only
std::atomic<bool> g_closing{false};  // env teardown: drop events
pthread_t g_js_thread;
bool g_in_submit = false;  // JS thread only: vio_submit may complete synchronously
vio_cmd *g_sync_done = nullptr;

Napi::Error MakeError(Napi::Env env, vio_err code, const char *msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, vio_err_name(code)));
  return e;
}

const char *ArrivalName(int a) {
  switch (a) {
    case VIO_ARRIVAL_MIGRATED_IN: return "migrated-in";
    case VIO_ARRIVAL_RECONNECTED: return "reconnected";
    case VIO_ARRIVAL_RESUMED: return "resumed";
    default: return "started";
  }
}

const char *DepartureName(int d) {
  return d == VIO_DEPARTURE_MIGRATING ? "migrating-out" : "stopped";
}

const char *VfLossName(int l) {
  switch (l) {
    case VIO_VF_LOSS_IFACE_GONE: return "interface-gone";
    case VIO_VF_LOSS_PORT_GONE: return "port-gone";
    default: return "unplugged";
  }
}

Napi::Object InfoToJs(Napi::Env env, const vio_relay_info &i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", i.id);
  o.Set("socketPath", i.socket_path);
  o.Set("mode", i.client ? "client" : "server");
  o.Set("queues", i.queues);
  o.Set("vhostQueues", i.vhost_queues);
  o.Set("numaNode", i.numa);
  o.Set("portId", i.port_id);
  o.Set("portName", i.port_name);
  o.Set("mac", i.mac);
  o.Set("linkUp", i.link_up);
  o.Set("guestConnected", i.guest_connected);
  o.Set("enabledQueues", i.enabled_queues);
  Napi::Object cpus = Napi::Object::New(env);
  cpus.Set("vfToVm", i.cpu_vf_to_vm);
  cpus.Set("vmToVf", i.cpu_vm_to_vf);
  o.Set("cpus", cpus);
  o.Set("vfAttached", i.vf_attached);
  if (!i.vf_attached && i.vf_loss >= 0) o.Set("vfLoss", VfLossName(i.vf_loss));
  o.Set("socketConnected", i.socket_connected);
  if (i.guest_connected && i.arrival >= 0) o.Set("guestArrival", ArrivalName(i.arrival));
  if (!i.guest_connected && i.departure >= 0) o.Set("guestDeparture", DepartureName(i.departure));
  Napi::Object mig = Napi::Object::New(env);
  mig.Set("in", i.migrations_in);
  mig.Set("out", i.migrations_out);
  o.Set("migrations", mig);
  if (i.features != 0) {
    auto has = [&](int bit) { return (i.features >> bit & 1ULL) != 0; };
    Napi::Object f = Napi::Object::New(env);
    f.Set("mergeableRxBuffers", has(15));               // VIRTIO_NET_F_MRG_RXBUF
    f.Set("tso", has(11) || has(12));                   // VIRTIO_NET_F_HOST_TSO4/6
    f.Set("checksum", has(0));                          // VIRTIO_NET_F_CSUM
    f.Set("multiqueue", has(22));                       // VIRTIO_NET_F_MQ
    f.Set("guestAnnounce", has(21));                    // VIRTIO_NET_F_GUEST_ANNOUNCE
    f.Set("dirtyLogging", has(26));                     // VHOST_F_LOG_ALL (live migration)
    f.Set("bits", Napi::String::New(env, "0x" + [&] { char b[20]; snprintf(b, sizeof b, "%llx", (unsigned long long)i.features); return std::string(b); }()));
    o.Set("guestFeatures", f);
  }
  return o;
}

Napi::Object CountersToJs(Napi::Env env, const vio_dir_counters &c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rxPackets", static_cast<double>(c.rx_pkts));
  o.Set("rxBytes", static_cast<double>(c.rx_bytes));
  o.Set("txPackets", static_cast<double>(c.tx_pkts));
  o.Set("txBytes", static_cast<double>(c.tx_bytes));
  o.Set("droppedQueueFullPackets", static_cast<double>(c.drop_full_pkts));
  o.Set("droppedQueueFullBytes", static_cast<double>(c.drop_full_bytes));
  o.Set("droppedNotConnectedPackets", static_cast<double>(c.drop_nc_pkts));
  o.Set("droppedNotConnectedBytes", static_cast<double>(c.drop_nc_bytes));
  return o;
}

Napi::Value EventToJs(Napi::Env env, const vio_event &ev) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("relayId", ev.relay_id);
  switch (ev.type) {
    case VIO_EV_GUEST_CONNECTED:
      o.Set("type", "guest-connected");
      o.Set("arrival", ArrivalName(ev.flag));
      break;
    case VIO_EV_GUEST_DISCONNECTED:
      o.Set("type", "guest-disconnected");
      o.Set("departure", DepartureName(ev.flag));
      break;
    case VIO_EV_VRING_STATE:
      o.Set("type", "vring-state");
      o.Set("queue", ev.queue);
      o.Set("enabled", ev.flag != 0);
      break;
    case VIO_EV_LINK:
      o.Set("type", "link");
      o.Set("up", ev.flag != 0);
      break;
    case VIO_EV_VF_REMOVED:
      o.Set("type", "vf-removed");
      o.Set("cause", VfLossName(ev.flag));
      break;
    case VIO_EV_DIRTY_LOG:
      o.Set("type", "dirty-log");
      o.Set("on", ev.flag != 0);
      break;
    case VIO_EV_CONNECTION:
      o.Set("type", "vhost-connection");
      o.Set("connected", ev.flag != 0);
      break;
    case VIO_EV_LOG:
      o.Set("type", "log");
      o.Set("level", ev.flag);
      o.Set("message", ev.text);
      break;
  }
  return o;
}

// Settle a completed command's Promise (JS thread) and free it.
void Settle(Napi::Env env, vio_cmd *cmd) {
  auto *p = static_cast<Pending *>(cmd->ctx);
  if (cmd->err.code != VIO_OK) {
    p->deferred.Reject(MakeError(env, cmd->err.code, cmd->err.msg).Value());
  } else if (cmd->type == VIO_CMD_ADD || cmd->type == VIO_CMD_SET_CPUS ||
             cmd->type == VIO_CMD_ATTACH_VF || cmd->type == VIO_CMD_DETACH_VF) {
    p->deferred.Resolve(InfoToJs(env, cmd->info));
  } else {
    p->deferred.Resolve(env.Undefined());
  }
  bool release = g_tsfn_live && ((cmd->type == VIO_CMD_STOP && cmd->err.code == VIO_OK) ||
                                 (p->owns_tsfn && cmd->err.code != VIO_OK));
  delete p;
  delete cmd;
  if (release) {
    g_tsfn_live = false;
    g_tsfn.Release();
  }
}

void CallJs(Napi::Env env, Napi::Function onEvent, std::nullptr_t *, Msg *m) {
  if (env != nullptr) {
    if (m->done) {
      Settle(env, m->cmd);
    } else if (!onEvent.IsEmpty()) {
      Napi::Value ev = EventToJs(env, m->ev);
      try {
        onEvent.Call({ev});
      } catch (const Napi::Error &e) {
        // an exception in a listener must not take the engine down; surface it
        e.ThrowAsJavaScriptException();
      }
    }
  }
  delete m;
}

// Completion: called on the control thread, or synchronously inside vio_submit.
void OnDone(vio_cmd *cmd) {
  if (g_in_submit && pthread_equal(pthread_self(), g_js_thread)) {
    g_sync_done = cmd;
    return;
  }
  auto *m = new Msg{true, {}, cmd};
  if (g_tsfn.NonBlockingCall(m) != napi_ok) delete m;  // env is going away
}

void OnEvent(void *, const vio_event *ev) {
  if (g_closing.load()) return;
  auto *m = new Msg{false, *ev, nullptr};
  if (g_tsfn.NonBlockingCall(m) != napi_ok) delete m;
}

using CmdPtr = std::unique_ptr<vio_cmd>;

// A zeroed command of this type. Its arguments are filled in while it is still owned here, so
// an argument that throws frees it; Submit hands it to the engine.
CmdPtr NewCmd(vio_cmd_type type) {
  CmdPtr cmd(new vio_cmd());
  std::memset(cmd.get(), 0, sizeof(vio_cmd));
  cmd->type = type;
  return cmd;
}

// Queues the command; its completion settles the returned Promise (Settle frees it).
Napi::Value Submit(Napi::Env env, CmdPtr owned, bool owns_tsfn = false) {
  vio_cmd *cmd = owned.release();
  auto *p = new Pending(env);
  p->owns_tsfn = owns_tsfn;
  Napi::Promise promise = p->deferred.Promise();
  cmd->ctx = p;
  cmd->done = OnDone;
  g_sync_done = nullptr;
  g_in_submit = true;
  vio_submit(cmd);
  g_in_submit = false;
  if (g_sync_done) {
    g_sync_done = nullptr;
    Settle(env, cmd);
  }
  return promise;
}

void EnvCleanup(void *) {
  g_closing = true;
  vio_stop_sync();
}

// ---- argument helpers -------------------------------------------------------------------

int IntOr(const Napi::Object &o, const char *key, int dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

int64_t Int64Or(const Napi::Object &o, const char *key, int64_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

int BoolOr(const Napi::Object &o, const char *key, int dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value() ? 1 : 0;
}

void CopyStr(const Napi::Env &env, char *dst, size_t cap, const std::string &s, const char *what) {
  if (s.size() >= cap)
    throw Napi::RangeError::New(env, std::string(what) + " is too long (at most " +
                                         std::to_string(cap - 1) + " characters)");
  std::memcpy(dst, s.c_str(), s.size() + 1);
}

// ---- exported functions -----------------------------------------------------------------

// start({ealArgs, mergeableRxBuffers, tso, jumbo, rxDescriptors, txDescriptors,
//        poolQueuePairs, idleSweepMicros}, onEvent) -> Promise<void>
Napi::Value Start(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "start(options, onEvent)");
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Value argsV = o.Get("ealArgs");
  if (!argsV.IsArray()) throw Napi::TypeError::New(env, "ealArgs must be an array of strings");
  Napi::Array args = argsV.As<Napi::Array>();
  if (args.Length() + 1 > VIO_MAX_EAL_ARGS) throw Napi::RangeError::New(env, "too many EAL arguments");

  CmdPtr cmd = NewCmd(VIO_CMD_START);
  vio_start_opts &s = cmd->u.start;
  // the engine copies the strings it keeps; these live until vio_submit returns
  std::string store[VIO_MAX_EAL_ARGS];
  store[0] = "vio4wd";
  for (uint32_t i = 0; i < args.Length(); i++) {
    Napi::Value a = args.Get(i);
    if (!a.IsString()) throw Napi::TypeError::New(env, "ealArgs must be an array of strings");
    store[i + 1] = a.As<Napi::String>().Utf8Value();
  }
  s.argc = static_cast<int>(args.Length()) + 1;
  for (int i = 0; i < s.argc; i++) s.argv[i] = const_cast<char *>(store[i].c_str());
  s.mrg_rxbuf = BoolOr(o, "mergeableRxBuffers", 1) != 0;
  s.tso = BoolOr(o, "tso", 0) != 0;
  s.jumbo = BoolOr(o, "jumbo", 0) != 0;
  s.rx_desc = static_cast<uint16_t>(IntOr(o, "rxDescriptors", 256));
  s.tx_desc = static_cast<uint16_t>(IntOr(o, "txDescriptors", 256));
  s.pool_queue_pairs = static_cast<uint32_t>(IntOr(o, "poolQueuePairs", 256));
  s.idle_sweep_us = static_cast<uint32_t>(IntOr(o, "idleSweepMicros", 100));
  s.log_events = BoolOr(o, "logEvents", 0) != 0;
  s.on_event = OnEvent;
  s.event_ctx = nullptr;
  bool created = false;
  if (!g_tsfn_live) {
    created = true;
    g_tsfn = Tsfn::New(env, info[1].As<Napi::Function>(), "vio4wd-engine", 0, 1, nullptr);
    g_tsfn_live = true;
    static bool hooked = false;
    if (!hooked) {
      // registered after the TSFN's own cleanup hook, so it runs before it
      napi_add_env_cleanup_hook(env, EnvCleanup, nullptr);
      hooked = true;
    }
  }
  return Submit(env, std::move(cmd), created);
}

void FillVf(Napi::Env env, const Napi::Object &vf, vio_relay_cfg &c);

void FillRelayCfg(Napi::Env env, const Napi::Object &o, vio_relay_cfg &c) {
  std::memset(&c, 0, sizeof(c));
  c.id = IntOr(o, "id", -1);
  c.queues = IntOr(o, "queues", 1);
  c.vhost_queues = IntOr(o, "vhostQueues", -1);
  c.mtu = IntOr(o, "mtu", 0);
  c.mrg_rxbuf = BoolOr(o, "mergeableRxBuffers", -1);
  c.tso = BoolOr(o, "tso", -1);
  c.numa = IntOr(o, "numaNode", -1);
  c.owner = Int64Or(o, "socketOwner", -1);
  c.group = Int64Or(o, "socketGroup", -1);
  c.perm = Int64Or(o, "socketPerm", -1);
  Napi::Value mode = o.Get("mode");
  c.client = mode.IsString() && mode.As<Napi::String>().Utf8Value() == "client";
  Napi::Value sp = o.Get("socketPath");
  if (!sp.IsString()) throw Napi::TypeError::New(env, "socketPath must be a string");
  CopyStr(env, c.socket_path, sizeof(c.socket_path), sp.As<Napi::String>().Utf8Value(), "socketPath");
  Napi::Value vfV = o.Get("vf");
  if (vfV.IsUndefined()) c.no_vf = true; /* a socket without a VF, given one by attachVf */
  else if (!vfV.IsObject()) throw Napi::TypeError::New(env, "vf must be an object");
  else FillVf(env, vfV.As<Napi::Object>(), c);
  c.cpu_vf_to_vm = c.cpu_vm_to_vf = -1;
  Napi::Value cpus = o.Get("cpus");
  if (cpus.IsObject()) {
    c.cpu_vf_to_vm = IntOr(cpus.As<Napi::Object>(), "vfToVm", -1);
    c.cpu_vm_to_vf = IntOr(cpus.As<Napi::Object>(), "vmToVf", -1);
  }
}

void FillVf(Napi::Env env, const Napi::Object &vf, vio_relay_cfg &c) {
  Napi::Value da = vf.Get("devargs");
  if (da.IsString()) CopyStr(env, c.devargs, sizeof(c.devargs), da.As<Napi::String>().Utf8Value(), "vf.devargs");
  Napi::Value pci = vf.Get("pciAddresses");
  if (pci.IsArray()) {
    Napi::Array a = pci.As<Napi::Array>();
    if (a.Length() > VIO_MAX_BOND_MEMBERS)
      throw Napi::RangeError::New(env, "vf.pciAddresses: at most 8 VFs in a bond");
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value s = a.Get(i);
      if (!s.IsString()) throw Napi::TypeError::New(env, "vf.pciAddresses must be strings");
      CopyStr(env, c.pci[i], sizeof(c.pci[i]), s.As<Napi::String>().Utf8Value(), "vf.pciAddresses[]");
    }
    c.n_pci = static_cast<int>(a.Length());
  }
  c.bond_mode = IntOr(vf, "bondMode", 1);
  Napi::Value bn = vf.Get("bondName");
  if (bn.IsString()) CopyStr(env, c.bond_name, sizeof(c.bond_name), bn.As<Napi::String>().Utf8Value(), "vf.bondName");
}

Napi::Value AddRelay(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "addRelay(config)");
  CmdPtr cmd = NewCmd(VIO_CMD_ADD);
  FillRelayCfg(env, info[0].As<Napi::Object>(), cmd->u.add);
  return Submit(env, std::move(cmd));
}

int IdArg(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "relay id must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

Napi::Value RemoveRelay(const Napi::CallbackInfo &info) {
  int id = IdArg(info, 0);
  CmdPtr cmd = NewCmd(VIO_CMD_REMOVE);
  cmd->u.id = id;
  return Submit(info.Env(), std::move(cmd));
}

// setRelayCpus(id, vfToVm, vmToVf): -1 keeps a direction where it is
Napi::Value SetRelayCpus(const Napi::CallbackInfo &info) {
  int id = IdArg(info, 0);
  int a = IdArg(info, 1), b = IdArg(info, 2);
  CmdPtr cmd = NewCmd(VIO_CMD_SET_CPUS);
  cmd->u.cpus.id = id;
  cmd->u.cpus.cpu_vf_to_vm = a;
  cmd->u.cpus.cpu_vm_to_vf = b;
  return Submit(info.Env(), std::move(cmd));
}

// detachVf(id) -> Promise<RelayInfo>: the VF side goes, the vhost-user side stays
Napi::Value DetachVf(const Napi::CallbackInfo &info) {
  int id = IdArg(info, 0);
  CmdPtr cmd = NewCmd(VIO_CMD_DETACH_VF);
  cmd->u.id = id;
  return Submit(info.Env(), std::move(cmd));
}

// attachVf(id, vf) -> Promise<RelayInfo>: attaches a VF (replacing an attached one)
Napi::Value AttachVf(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int id = IdArg(info, 0);
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "attachVf(id, vf)");
  CmdPtr cmd = NewCmd(VIO_CMD_ATTACH_VF);
  cmd->u.add.id = id;
  FillVf(env, info[1].As<Napi::Object>(), cmd->u.add);
  return Submit(env, std::move(cmd));
}

// preparePools(numaNode, queuePairs) -> Promise<void>: the mbuf pools for relays to come
Napi::Value PreparePools(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "preparePools(numaNode, queuePairs)");
  CmdPtr cmd = NewCmd(VIO_CMD_PREPARE_POOLS);
  cmd->u.pools.numa = info[0].As<Napi::Number>().Int32Value();
  cmd->u.pools.queue_pairs = info[1].As<Napi::Number>().Int32Value();
  return Submit(env, std::move(cmd));
}

Napi::Value Stop(const Napi::CallbackInfo &info) {
  return Submit(info.Env(), NewCmd(VIO_CMD_STOP));
}

void ThrowIf(Napi::Env env, vio_err rc, const std::string &what) {
  if (rc == VIO_ENOTSTARTED) throw MakeError(env, rc, "engine not running");
  if (rc != VIO_OK) throw MakeError(env, rc, what.c_str());
}

Napi::Value Relay(const Napi::CallbackInfo &info) {
  vio_relay_info ri;
  vio_err rc = vio_query_relay(IdArg(info, 0), &ri);
  if (rc == VIO_ENOENT) return info.Env().Undefined();
  ThrowIf(info.Env(), rc, "");
  return InfoToJs(info.Env(), ri);
}

Napi::Value RelayIds(const Napi::CallbackInfo &info) {
  static int ids[VIO_MAX_RELAYS];
  int n = vio_query_ids(ids, VIO_MAX_RELAYS);
  Napi::Array a = Napi::Array::New(info.Env(), n);
  for (int i = 0; i < n; i++) a.Set(i, ids[i]);
  return a;
}

Napi::Value Stats(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int id = IdArg(info, 0);
  static vio_relay_stats st;  // JS thread only
  vio_err rc = vio_query_stats(id, &st);
  ThrowIf(env, rc, "relay " + std::to_string(id) + " does not exist");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", st.id);
  o.Set("vfToVm", CountersToJs(env, st.total[VIO_DIR_VF_TO_VM]));
  o.Set("vmToVf", CountersToJs(env, st.total[VIO_DIR_VM_TO_VF]));
  Napi::Array qs = Napi::Array::New(env, st.queues);
  for (int q = 0; q < st.queues; q++) {
    Napi::Object qo = Napi::Object::New(env);
    qo.Set("queue", q);
    qo.Set("vfToVm", CountersToJs(env, st.queue[q][VIO_DIR_VF_TO_VM]));
    qo.Set("vmToVf", CountersToJs(env, st.queue[q][VIO_DIR_VM_TO_VF]));
    qs.Set(q, qo);
  }
  o.Set("queues", qs);
  if (st.vf.valid) {
    Napi::Object v = Napi::Object::New(env);
    v.Set("rxPackets", static_cast<double>(st.vf.ipackets));
    v.Set("txPackets", static_cast<double>(st.vf.opackets));
    v.Set("rxBytes", static_cast<double>(st.vf.ibytes));
    v.Set("txBytes", static_cast<double>(st.vf.obytes));
    v.Set("rxMissed", static_cast<double>(st.vf.imissed));
    v.Set("rxErrors", static_cast<double>(st.vf.ierrors));
    v.Set("txErrors", static_cast<double>(st.vf.oerrors));
    v.Set("rxNoMbuf", static_cast<double>(st.vf.rx_nombuf));
    o.Set("vf", v);
  }
  return o;
}

Napi::Value Workers(const Napi::CallbackInfo &info) {
  vio_worker_info w[VIO_MAX_WORKERS];
  int n = vio_query_workers(w, VIO_MAX_WORKERS);
  Napi::Array a = Napi::Array::New(info.Env(), n);
  for (int i = 0; i < n; i++) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("cpu", w[i].cpu);
    o.Set("lcore", w[i].lcore);
    o.Set("numaNode", w[i].numa);
    o.Set("directions", w[i].directions);
    o.Set("busyCycles", static_cast<double>(w[i].busy_cycles));
    o.Set("idleCycles", static_cast<double>(w[i].idle_cycles));
    o.Set("packets", static_cast<double>(w[i].packets));
    o.Set("dropped", static_cast<double>(w[i].dropped));
    o.Set("entries", w[i].entries);
    o.Set("hotEntries", w[i].hot_entries);
    o.Set("wakeups", static_cast<double>(w[i].wakeups));
    a.Set(i, o);
  }
  return a;
}

Napi::Value Memory(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  vio_memory_info m;
  ThrowIf(env, vio_query_memory(&m), "");
  Napi::Object o = Napi::Object::New(env);
  Napi::Array pools = Napi::Array::New(env, m.n_pools);
  for (int i = 0; i < m.n_pools; i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("numaNode", m.pools[i].numa);
    p.Set("name", m.pools[i].name);
    p.Set("size", m.pools[i].size);
    p.Set("inUse", m.pools[i].in_use);
    p.Set("bytes", static_cast<double>(m.pools[i].bytes));
    pools.Set(i, p);
  }
  o.Set("mempools", pools);
  o.Set("hugepageBytes", static_cast<double>(m.hugepage_bytes));
  o.Set("heapAllocatedBytes", static_cast<double>(m.heap_allocated_bytes));
  o.Set("heapFreeBytes", static_cast<double>(m.heap_free_bytes));
  return o;
}

// The settings the running engine took (vio_query_settings), named as start() names them.
Napi::Value Settings(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  vio_settings s;
  ThrowIf(env, vio_query_settings(&s), "");
  Napi::Object o = Napi::Object::New(env);
  o.Set("mergeableRxBuffers", s.mrg_rxbuf);
  o.Set("tso", s.tso);
  o.Set("jumbo", s.jumbo);
  o.Set("rxDescriptors", s.rx_desc);
  o.Set("txDescriptors", s.tx_desc);
  o.Set("poolQueuePairs", s.pool_queue_pairs);
  o.Set("idleSweepMicros", s.idle_sweep_us);
  return o;
}

Napi::Value Version(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), vio_dpdk_version());
}

// The process's C heap (glibc malloc, all arenas): what the agent's native parts (DPDK's
// control path, OpenSSL, libuv, V8's compiler zones) hold outside the JS heap.
Napi::Value NativeHeap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct mallinfo2 mi = mallinfo2();
  Napi::Object o = Napi::Object::New(env);
  o.Set("arenaBytes", Napi::Number::New(env, (double)mi.arena));
  o.Set("mmapBytes", Napi::Number::New(env, (double)mi.hblkhd));
  o.Set("inUseBytes", Napi::Number::New(env, (double)(mi.uordblks + mi.hblkhd)));
  o.Set("freeBytes", Napi::Number::New(env, (double)mi.fordblks));
  // malloc_info's XML has one <heap nr="N"> per arena: how many arenas the threads spread over
  // (glibc gives each new thread its own, up to 8 per core, unless MALLOC_ARENA_MAX says less)
  char *xml = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&xml, &len);
  unsigned arenas = 0;
  if (f != nullptr) {
    if (malloc_info(0, f) == 0) {
      fflush(f);
      for (const char *p = xml; p != nullptr && (p = strstr(p, "<heap nr=")) != nullptr; p++) arenas++;
    }
    fclose(f);
    free(xml);
  }
  o.Set("arenas", Napi::Number::New(env, arenas));
  return o;
}

// Gives the free pages of every malloc arena back to the system (malloc_trim(0)): glibc keeps
// freed memory inside each thread's arena, so a burst of native work (relays added and
// removed) would stay in the RSS. Returns whether memory was released.
Napi::Value TrimNativeHeap(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

// glibc raises its mmap threshold to the size of each mmap'd block freed (up to 32 MiB), and the
// trim threshold to twice that: after the first few MiB-sized block came and went, blocks of that
// size were carved from the arenas, and a thread arena's top kept up to twice it resident, which
// malloc_trim does not give back (it trims only the main arena's top). In relay churn this was a
// one-time step of 3-7 MiB at a random point (bench/churn-memory.ts). Fixed thresholds (glibc's
// starting values) keep large blocks mmap'd and tops trimmed; MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES in the environment win.
constexpr int kMallocThreshold = 128 * 1024;

void FixMallocThresholds() {
  if (getenv("GLIBC_TUNABLES") != nullptr) return;
  if (getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, kMallocThreshold);
  if (getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, kMallocThreshold);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  g_js_thread = pthread_self();
  FixMallocThresholds();
  exports.Set("start", Napi::Function::New(env, Start));
  exports.Set("addRelay", Napi::Function::New(env, AddRelay));
  exports.Set("removeRelay", Napi::Function::New(env, RemoveRelay));
  exports.Set("setRelayCpus", Napi::Function::New(env, SetRelayCpus));
  exports.Set("detachVf", Napi::Function::New(env, DetachVf));
  exports.Set("attachVf", Napi::Function::New(env, AttachVf));
  exports.Set("preparePools", Napi::Function::New(env, PreparePools));
  exports.Set("stop", Napi::Function::New(env, Stop));
  exports.Set("relay", Napi::Function::New(env, Relay));
  exports.Set("relayIds", Napi::Function::New(env, RelayIds));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("workers", Napi::Function::New(env, Workers));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("settings", Napi::Function::New(env, Settings));
  exports.Set("nativeHeap", Napi::Function::New(env, NativeHeap));
  exports.Set("trimNativeHeap", Napi::Function::New(env, TrimNativeHeap));
  exports.Set("version", Napi::Function::New(env, Version));
  exports.Set("maxRelays", Napi::Number::New(env, VIO_MAX_RELAYS));
  exports.Set("maxQueues", Napi::Number::New(env, VIO_MAX_QUEUES));
  Napi::Object limits = Napi::Object::New(env);
  limits.Set("maxRelays", Napi::Number::New(env, VIO_MAX_RELAYS));
  limits.Set("maxQueues", Napi::Number::New(env, VIO_MAX_QUEUES));
  limits.Set("maxWorkers", Napi::Number::New(env, VIO_MAX_WORKERS));
  limits.Set("maxBondMembers", Napi::Number::New(env, VIO_MAX_BOND_MEMBERS));
  limits.Set("pathMax", Napi::Number::New(env, VIO_PATH_MAX));
  limits.Set("devargsMax", Napi::Number::New(env, VIO_DEVARGS_MAX));
  limits.Set("mtuMin", Napi::Number::New(env, VIO_MTU_MIN));
  limits.Set("mtuMax", Napi::Number::New(env, VIO_MTU_MAX));
  exports.Set("limits", limits);
  exports.Set("maxPorts", Napi::Number::New(env, vio_max_ports()));
  exports.Set("tscHz", Napi::Function::New(env, [](const Napi::CallbackInfo &info) -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(vio_tsc_hz()));
  }));
  return exports;
}

}  // namespace

NODE_API_MODULE(vio4wd, Init)
