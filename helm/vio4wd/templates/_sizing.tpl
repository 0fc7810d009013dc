{{/*
Hugepage sizing of the agent (docs/sizing.md). The need is the engine's own formula
(src/engine/sizing.ts, which `vio4wd doctor` prints as pages per NUMA node; a test renders the
chart for several pool settings and compares with the doctor), written again here because helm
cannot run vio4wd:

  pools  = max(1, ceil(R / P))                    one mbuf pool per P queue pairs
  mbufs  = P x (RXD + TXD + 64) + (workers + 1) x 384
  bytes  = pools x (mbufs x MBUF + ring(mbufs)) + 8 MiB + R x 96 KiB + R x 8 KiB + 8 MiB
  pages  = ceil(bytes / 2 MiB)                    per NUMA node that runs relays

R = agent.hugepages.relays (queue pairs; one per relay), P = engine.poolQueuePairs, RXD/TXD the
ring sizes, MBUF 2368 bytes (9536 with engine.jumbo), ring(n) the pool's ring: 8 bytes a slot,
the next power of two above n. The engine values are read from the agent config the chart
renders (so agent.extraConfig.engine counts too), with the engine's defaults.
*/}}

{{/* The need as JSON {pagesPerNode, perNode (quantity), quantity, bytes, why}. Argument: the root context. */}}
{{- define "vio4wd.hugepages.need" -}}
{{- $h := .Values.agent.hugepages -}}
{{- $e := (include "vio4wd.agent.config" . | fromYaml).engine -}}
{{- $r := int $h.relays -}}
{{- $p := int (default 256 $e.poolQueuePairs) -}}
{{- $rxd := int (default 256 $e.rxDescriptors) -}}
{{- $txd := int (default 256 $e.txDescriptors) -}}
{{- $workers := len $e.workerCpus -}}
{{- $mbufs := add (mul $p (add $rxd $txd 64)) (mul (add1 $workers) 384) -}}
{{- $pools := max 1 (div (sub (add $r $p) 1) $p) -}}
{{- $jumbo := false -}}
{{- $mbuf := 2368 -}}
{{- if $e.jumbo }}{{ $jumbo = true }}{{ $mbuf = 9536 }}{{ end -}}
{{- $ring := 1 -}}
{{- range until 48 }}{{ if le $ring $mbufs }}{{ $ring = mul $ring 2 }}{{ end }}{{ end -}}
{{- $pool := add (mul $mbufs $mbuf) (mul $ring 8) -}}
{{- $mib := 1048576 -}}
{{- $bytes := add (mul $pools $pool) (mul 8 $mib) (mul $r 98304) (mul $r 8192) (mul 8 $mib) -}}
{{- $pages := div (add $bytes (sub (mul 2 $mib) 1)) (mul 2 $mib) -}}
{{- $numa := int (default 1 $h.numaNodes) -}}
{{- $out := dict "pagesPerNode" $pages -}}
{{- if eq $h.size "1Gi" -}}
{{- $gib := div (add $bytes (sub (mul 1024 $mib) 1)) (mul 1024 $mib) -}}
{{- $_ := set $out "perNode" (printf "%dGi" $gib) -}}
{{- $_ := set $out "quantity" (printf "%dGi" (mul $gib $numa)) -}}
{{- $_ := set $out "bytes" (mul $gib $numa 1024 $mib) -}}
{{- else -}}
{{- $_ := set $out "perNode" (printf "%dMi" (mul $pages 2)) -}}
{{- $_ := set $out "quantity" (printf "%dMi" (mul $pages 2 $numa)) -}}
{{- $_ := set $out "bytes" (mul $pages 2 $numa $mib) -}}
{{- end -}}
{{- $_ := set $out "why" (printf "%d relays (agent.hugepages.relays) on each of %d NUMA node(s) need %s per node (%d x 2 MiB pages: %d mbuf pool(s) of engine.poolQueuePairs %d with rx/txDescriptors %d/%d, %d worker(s), jumbo %v)" $r $numa $out.perNode $pages $pools $p $rxd $txd $workers $jumbo) -}}
{{- toJson $out -}}
{{- end -}}

{{/* Bytes of a Kubernetes quantity (the forms values.schema.json lets through), as a number. */}}
{{- define "vio4wd.quantityBytes" -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $units := dict "" 1 "m" 0.001 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- mulf (float64 $n) (get $units (trimPrefix $n .)) -}}
{{- end -}}

{{/*
The hugepages the agent requests and is limited to: agent.hugepages.amount "auto" gives the need,
a quantity is taken as it is unless it is less than the need (then rendering fails), "" none.
*/}}
{{- define "vio4wd.agent.hugepages" -}}
{{- $amount := toString .Values.agent.hugepages.amount -}}
{{- if $amount -}}
{{- $need := include "vio4wd.hugepages.need" . | fromJson -}}
{{- if eq $amount "auto" -}}
{{- $need.quantity -}}
{{- else -}}
{{- if lt (float64 (include "vio4wd.quantityBytes" $amount)) (float64 $need.bytes) -}}
{{- fail (printf "agent.hugepages.amount: %s is less than the engine needs: %s in all; %s. Set agent.hugepages.amount to at least %s, or to \"auto\" (the need), or size for fewer relays (agent.hugepages.relays); `vio4wd doctor --config <agent config> --relays N` prints the pages per node (docs/sizing.md)" $amount $need.quantity $need.why $need.quantity) -}}
{{- end -}}
{{- $amount -}}
{{- end -}}
{{- end -}}
{{- end -}}
