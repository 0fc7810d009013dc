# libvirt's own tools for the KubeVirt sidecar tests: virt-xml-validate checks rewritten domain
# XML against libvirt's RelaxNG schema (it calls xmllint from libxml2-utils).
apt_need libvirt-clients libxml2-utils
command -v virt-xml-validate >/dev/null || fail "virt-xml-validate not found after installing libvirt-clients" "run 'apt-get install libvirt-clients' by hand"
say "libvirt: ok (virt-xml-validate $(dpkg-query -W -f='${Version}' libvirt-clients))"
