// Wrapper module that builds cnitool, the command-line face of containernetworking/cni's libcni,
// from its published Go module: the tests drive vio4wd-cni with it as Multus drives a plugin
// (libcni's ADD/CHECK/DEL, the result cache, capability args into runtimeConfig). Built by
// test/env/build-cnitool.sh.
module vio4wd.io/testenv/cnitool

go 1.24

require github.com/containernetworking/cni v1.3.0 // indirect
