# vio4wd: one image for every role (`vio4wd agent`, `vio4wd operator`, `vio4wd kubevirt-sidecar`,
# and the CLI). The build stages compile DPDK (Debian's source package of DPDK_VERSION, with room for 1024
# relays instead of Debian's 32), the native engine and the TypeScript; the runtime stage is
# Debian bookworm slim with Node 26 (LTS), that DPDK with only the poll-mode drivers the engine loads,
# and the app in /opt/vio4wd.
#
#   podman build -t vio4wd:0.1.0 .          (or docker build; the default target is the last stage)
#   podman build --build-arg DPDK_PMDS="net_vhost net_bond net_iavf" -t vio4wd:intel-only .
#
# The DPDK build takes 10-17 minutes on 2 cores, once (the layer is cached). On a machine that
# ran scripts/bootstrap the same build is already there; hand it in instead of building again:
#   podman build --build-context dpdk=$(readlink -f /opt/vio4wd-dpdk/22.11.11-ports1024) -t vio4wd:0.1.0 .
#
# The image runs as an unprivileged user (65532) by default: enough for the operator and the
# KubeVirt sidecar. The node agent needs root (DPDK: hugepages, vfio, sysfs); its DaemonSet sets
# runAsUser: 0 (helm/vio4wd/templates/agent-daemonset.yaml says why, capability by capability).

ARG NODE_IMAGE=node:26-bookworm-slim
ARG DEBIAN_IMAGE=debian:bookworm-slim
# DPDK: the upstream version of Debian's source package, and the ethdev ports (one per relay's VF).
# build-dpdk.sh looks the version up in bookworm's and trixie's deb-src lists (apt state of its
# own, the stage's apt sources stay as they are): 22.11.11 is bookworm's, 24.11.8 trixie's (the
# engine builds against both; --build-arg DPDK_VERSION=24.11.8)
ARG DPDK_VERSION=22.11.11
ARG DPDK_MAX_PORTS=1024

# --- DPDK, built from Debian's source package by the recipe the machines use (scripts/build-dpdk.sh)
FROM ${DEBIAN_IMAGE} AS dpdk-build
ARG DPDK_VERSION
ARG DPDK_MAX_PORTS
COPY scripts/build-dpdk.sh /usr/local/sbin/build-dpdk.sh
RUN build-dpdk.sh build --version "$DPDK_VERSION" --max-ports "$DPDK_MAX_PORTS" --install-deps --clean

# --- the DPDK build's prefix as the root of a stage. `--build-context dpdk=<prefix of a finished
# build>` replaces this stage (and so skips the one above): the image test and scripts/bootstrap
# hand in the machine's build (scripts/bootstrap.d/35-dpdk.sh) that way.
FROM scratch AS dpdk
ARG DPDK_VERSION
ARG DPDK_MAX_PORTS
COPY --from=dpdk-build /opt/vio4wd-dpdk/${DPDK_VERSION}-ports${DPDK_MAX_PORTS}/ /

# --- build: npm packages (cached until package-lock.json changes) ------------------------------
FROM ${NODE_IMAGE} AS deps
# a C/C++ toolchain for native/, and what DPDK's pkg-config file (libdpdk.pc) and headers name:
# libbsd, and the libraries its drivers link (rdma-core, libelf, libpcap, jansson, libnuma, libfdt)
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make pkg-config \
      libbsd-dev libibverbs-dev libelf-dev libpcap-dev libjansson-dev libnuma-dev libfdt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Behind a TLS-inspecting proxy, give its CA bundle as a build secret (PEM), e.g.
#   podman build --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt .
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; fi \
 && npm ci --omit=optional --no-audit --no-fund --loglevel=error

# --- production node_modules: no dev packages, no type declarations, maps or other platforms ----
FROM deps AS prod-deps
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund --loglevel=error \
 && find node_modules \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -type f -delete \
 && rm -rf node_modules/zeromq/build/darwin node_modules/zeromq/build/win32 node_modules/zeromq/build/linux/arm64 \
           node_modules/zeromq/build/linux/x64/node/musl-* \
           node_modules/zeromq/src node_modules/zeromq/script node_modules/zeromq/vcpkg.json \
           node_modules/node-addon-api node_modules/node-api-headers

# --- the DPDK build where the next stages use it: headers and pkg-config for native/, the files
# for the runtime
FROM deps AS dpdk-dev
ARG DPDK_VERSION
ARG DPDK_MAX_PORTS
COPY --from=dpdk / /opt/vio4wd-dpdk/${DPDK_VERSION}-ports${DPDK_MAX_PORTS}/
ENV DPDK_PREFIX=/opt/vio4wd-dpdk/${DPDK_VERSION}-ports${DPDK_MAX_PORTS}

# --- DPDK's run-time files: the libraries, and of the drivers only DPDK_PMDS (EAL loads every
# driver in its plugin directory at start), the buses and mempool and what these need:
#   virtual devices: vhost (vhost-user), tap and af_packet (VF stand-ins), bond (two VFs as one),
#                    null (tests)
#   VFs: iavf (Intel E810/X710 VFs), i40e, ice, ixgbe (82599/X5xx VFs), mlx5 (NVIDIA ConnectX VFs)
# The build has more (e1000, nfp, bnxt, virtio, memif, ring): scripts/build-dpdk.sh lists them
# when a wrong name is given.
FROM dpdk-dev AS dpdk-runtime
ARG DPDK_PMDS="net_vhost net_tap net_af_packet net_bond net_null net_iavf net_i40e net_ice net_ixgbe net_mlx5"
COPY scripts/build-dpdk.sh /usr/local/sbin/build-dpdk.sh
RUN build-dpdk.sh runtime "$DPDK_PREFIX" /out ${DPDK_PMDS}

# --- build: the native engine against that DPDK (linked with an rpath to its prefix, which is
# the same path in the runtime stage), then the TypeScript --------------------------------------
FROM dpdk-dev AS build
COPY native/Makefile native/
COPY native/src native/src
RUN echo "DPDK_PREFIX=$DPDK_PREFIX" > native/dpdk.env \
 && make -C native -j"$(nproc)" && strip --strip-debug native/build/vio4wd.node
COPY tsconfig.json ./
COPY src src
RUN npx tsc -p tsconfig.json && find dist -name '*.map' -delete

# --- node without its debug information (Node 26's build carries it: 150 MB, stripped 117 MB) ----
FROM deps AS node
RUN strip -o /node "$(command -v node)" && /node --version

# --- runtime -------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime
# the libraries DPDK's libraries and drivers link (libmlx5 is in ibverbs-providers) and node links
# (libatomic1); iproute2 sets VF MACs through their PF (ip link set PF vf N mac ...)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnuma1 libbsd0 libfdt1 libjansson4 libpcap0.8 libelf1 \
      libibverbs1 ibverbs-providers iproute2 libatomic1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/dpkg.log /var/log/apt
COPY --from=node /node /usr/local/bin/node
# DPDK at the prefix it was built for (its plugin directory is compiled in), in ld.so's cache
COPY --from=dpdk-runtime /out/ /
RUN ldconfig \
 && groupadd --system --gid 65532 vio4wd \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin vio4wd
WORKDIR /opt/vio4wd
COPY --from=prod-deps /src/node_modules node_modules
COPY package.json ./
# the device plugin, the ZeroMQ control and the KubeVirt hook API load these .proto files at run time
COPY proto proto
COPY bin bin
COPY --from=build /src/native/build/vio4wd.node native/build/vio4wd.node
COPY --from=build /src/dist dist
RUN ln -s /opt/vio4wd/bin/vio4wd.js /usr/local/bin/vio4wd && vio4wd --version \
 && node -e "const a = require('/opt/vio4wd/native/build/vio4wd.node'); console.log(a.version() + ', ' + a.maxPorts + ' ethdev ports')"
# at most 2 malloc arenas (glibc's default is 8 per core): the agent's threads each kept an arena
# whose freed pages stayed resident, so relay churn grew the RSS (bench/RESULTS.md K)
ENV NODE_ENV=production MALLOC_ARENA_MAX=2
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
