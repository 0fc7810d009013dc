# profiles: test
# libvirt for the KubeVirt sidecar tests: virt-xml-validate (libvirt-clients, with xmllint from
# libxml2-utils) checks rewritten domain XML against libvirt's RelaxNG schema; libvirtd with the
# QEMU driver (run by the test as a session daemon of user nobody) defines the rewritten domains.

command -v virt-xml-validate >/dev/null || fail "virt-xml-validate not found after installing libvirt-clients" "run 'apt-get install libvirt-clients' by hand"
[[ -x /usr/sbin/libvirtd ]] || fail "libvirtd not found after installing libvirt-daemon" "run 'apt-get install libvirt-daemon libvirt-daemon-driver-qemu' by hand"
say "libvirt: ok ($(dpkg-query -W -f='${Version}' libvirt-clients))"
