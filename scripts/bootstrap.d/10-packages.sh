# Debian packages the project and its tests use.
apt_need dpdk dpdk-dev libdpdk-dev pkg-config iproute2 iputils-ping make g++ python3
say "packages: ok"
