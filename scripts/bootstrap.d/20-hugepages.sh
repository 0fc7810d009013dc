# profiles: demo test
# 2 MiB hugepages, the hugetlbfs mount at /dev/hugepages, and vm.max_map_count.
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
[[ -w $hp ]] || fail "no 2 MiB hugepage support ($hp)" "use a kernel with CONFIG_HUGETLBFS and 2 MiB pages"
have=$(cat "$hp")
if (( have < VIO4WD_HUGEPAGES )); then
  echo "$VIO4WD_HUGEPAGES" > "$hp"
  have=$(cat "$hp")
  (( have >= VIO4WD_HUGEPAGES )) || fail "reserved only $have of $VIO4WD_HUGEPAGES 2 MiB hugepages" \
    "free memory (or set VIO4WD_HUGEPAGES lower), then rerun scripts/bootstrap"
  say "hugepages: reserved $have x 2 MiB"
fi
# Mount only when no hugetlbfs of 2 MiB pages is at /dev/hugepages already: a second mount at
# the same path makes DPDK deadlock.
if ! awk '$2=="/dev/hugepages" && $3=="hugetlbfs" && ($4 ~ /pagesize=2M/ || $4 !~ /pagesize=/) {f=1} END {exit !f}' /proc/mounts; then
  if awk '$2=="/dev/hugepages" && $3=="hugetlbfs" {f=1} END {exit !f}' /proc/mounts; then
    fail "/dev/hugepages is a hugetlbfs of another page size" "unmount it (umount /dev/hugepages) and rerun"
  fi
  mkdir -p /dev/hugepages
  mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages || fail "mount hugetlbfs at /dev/hugepages" "check 'dmesg' for the reason"
  say "hugepages: mounted hugetlbfs (2 MiB) at /dev/hugepages"
fi
want_maps=$(( 2 * have ))
maps=$(cat /proc/sys/vm/max_map_count)
if (( maps < want_maps )); then
  sysctl -qw vm.max_map_count="$want_maps" || fail "raise vm.max_map_count to $want_maps" "run: sysctl -w vm.max_map_count=$want_maps"
  maps=$want_maps
fi
say "hugepages: ok ($have x 2 MiB, vm.max_map_count $maps)"
