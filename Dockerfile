# vio4wd: one image for every role (`vio4wd agent`, `vio4wd operator`, `vio4wd kubevirt-sidecar`,
# and the CLI). The build stages compile the native DPDK engine and the TypeScript; the runtime
# stage is Debian bookworm slim with Node 20, the DPDK libraries with only the poll-mode drivers
# the engine loads, and the app in /opt/vio4wd.
#
#   podman build -t vio4wd:0.1.0 .          (or docker build; the default target is the last stage)
#   podman build --build-arg DPDK_PMDS="librte-net-iavf23" -t vio4wd:intel-only .
#
# The image runs as an unprivileged user (65532) by default: enough for the operator and the
# KubeVirt sidecar. The node agent needs root (DPDK: hugepages, vfio, sysfs); its DaemonSet sets
# runAsUser: 0 (helm/vio4wd/templates/agent-daemonset.yaml says why, capability by capability).

ARG NODE_IMAGE=node:20-bookworm-slim
ARG DEBIAN_IMAGE=debian:bookworm-slim

# --- build: npm packages (cached until package-lock.json changes) ------------------------------
FROM ${NODE_IMAGE} AS deps
# DPDK headers (pkg-config libdpdk) and a C/C++ toolchain for native/
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make pkg-config libdpdk-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Behind a TLS-inspecting proxy, give its CA bundle as a build secret (PEM), e.g.
#   podman build --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt .
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; fi \
 && npm ci --no-audit --no-fund --loglevel=error

# --- production node_modules: no dev packages, no type declarations, maps or other platforms ----
FROM deps AS prod-deps
RUN npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && find node_modules \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -type f -delete \
 && rm -rf node_modules/zeromq/build/darwin node_modules/zeromq/build/win32 node_modules/zeromq/build/linux/arm64 \
           node_modules/zeromq/build/linux/x64/node/musl-* \
           node_modules/zeromq/src node_modules/zeromq/script node_modules/zeromq/vcpkg.json \
           node_modules/node-addon-api node_modules/node-api-headers

# --- build: the native engine, then the TypeScript ---------------------------------------------
FROM deps AS build
COPY native/Makefile native/
COPY native/src native/src
RUN make -C native -j"$(nproc)" && strip --strip-debug native/build/vio4wd.node
COPY tsconfig.json ./
COPY src src
RUN npx tsc -p tsconfig.json && find dist -name '*.map' -delete

# --- runtime -------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS node
FROM ${DEBIAN_IMAGE} AS runtime
# DPDK poll-mode drivers to install. EAL loads every driver in its plugin directory at start, so
# only these (and what they depend on) are there:
#   virtual devices: vhost (vhost-user), tap and af_packet (VF stand-ins), bonding (two VFs as one)
#   VFs: iavf (Intel E810/X710 VFs), i40e, ice, ixgbe (82599/X5xx VFs), mlx5 (NVIDIA ConnectX VFs)
ARG DPDK_PMDS="librte-net-vhost23 librte-net-tap23 librte-net-af-packet23 librte-net-bond23 librte-net-null23 \
librte-net-iavf23 librte-net-i40e23 librte-net-ice23 librte-net-ixgbe23 librte-net-mlx5-23"
# buses and the default mempool driver (ring) every DPDK process needs; iproute2 sets VF MACs
# through their PF (ip link set PF vf N mac ...)
RUN apt-get update \
 && apt-get install -y --no-install-recommends librte-bus-pci23 librte-bus-vdev23 librte-mempool-ring23 ${DPDK_PMDS} iproute2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/dpkg.log /var/log/apt
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 65532 vio4wd \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin vio4wd
WORKDIR /opt/vio4wd
COPY --from=prod-deps /src/node_modules node_modules
COPY package.json ./
# the device plugin, the ZeroMQ control and the KubeVirt hook API load these .proto files at run time
COPY proto proto
COPY bin bin
COPY --from=build /src/native/build/vio4wd.node native/build/vio4wd.node
COPY --from=build /src/dist dist
RUN ln -s /opt/vio4wd/bin/vio4wd.js /usr/local/bin/vio4wd && vio4wd --version
ENV NODE_ENV=production
USER 65532:65532
ENTRYPOINT ["vio4wd"]
CMD ["--help"]
LABEL org.opencontainers.image.title="vio4wd" \
      org.opencontainers.image.description="Kubernetes-native virtio-forwarder: a DPDK relay between SR-IOV VFs and vhost-user sockets" \
      org.opencontainers.image.licenses="Apache-2.0"

# --- the KubeVirt network-binding sidecar: KubeVirt starts the binding's sidecarImage with no
# arguments, so this variant's entrypoint is the sidecar command itself.
#   podman build --target kubevirt-sidecar -t ghcr.io/vio4wd/vio4wd-kubevirt-sidecar:0.1.0 .
FROM runtime AS kubevirt-sidecar
ENTRYPOINT ["vio4wd", "kubevirt-sidecar"]
CMD []

# --- the default target (last stage): the vio4wd image
FROM runtime AS vio4wd
