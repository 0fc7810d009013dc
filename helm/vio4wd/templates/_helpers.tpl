{{/* Names, labels and small pieces shared by the templates. */}}

{{- define "vio4wd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, or the release name alone when it already contains the chart name */}}
{{- define "vio4wd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vio4wd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vio4wd.labels" -}}
helm.sh/chart: {{ include "vio4wd.chart" . }}
app.kubernetes.io/name: {{ include "vio4wd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vio4wd
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* selector labels of one component: include "vio4wd.selectorLabels" (list . "agent") */}}
{{- define "vio4wd.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "vio4wd.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "vio4wd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "vio4wd.agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.agent.create -}}
{{- default (printf "%s-agent" (include "vio4wd.fullname" .)) .Values.serviceAccount.agent.name -}}
{{- else -}}
{{- required "serviceAccount.agent.name: name an existing ServiceAccount when serviceAccount.agent.create is false" .Values.serviceAccount.agent.name -}}
{{- end -}}
{{- end -}}

{{- define "vio4wd.operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.operator.create -}}
{{- default (printf "%s-operator" (include "vio4wd.fullname" .)) .Values.serviceAccount.operator.name -}}
{{- else -}}
{{- required "serviceAccount.operator.name: name an existing ServiceAccount when serviceAccount.operator.create is false" .Values.serviceAccount.operator.name -}}
{{- end -}}
{{- end -}}

{{- define "vio4wd.operator.leaseName" -}}
{{- default (printf "%s-operator" (include "vio4wd.fullname" .)) .Values.operator.leaseName -}}
{{- end -}}

{{/* true when the agent's metrics listen beyond loopback (and are then authorised) */}}
{{- define "vio4wd.agent.metricsExposed" -}}
{{- if or .Values.agent.metrics.expose (not .Values.agent.hostNetwork) }}true{{ end -}}
{{- end -}}

{{/* The agent's configuration file (schemas/agent-config.schema.json) from the values. */}}
{{- define "vio4wd.agent.config" -}}
{{- $a := .Values.agent -}}
{{- $exposed := eq (include "vio4wd.agent.metricsExposed" .) "true" -}}
{{- $engine := dict "workerCpus" $a.engine.workerCpus "inMemory" $a.engine.inMemory "hugeDir" $a.hugepages.dir -}}
{{- if not (kindIs "invalid" $a.engine.mainCpu) }}{{ $_ := set $engine "mainCpu" $a.engine.mainCpu }}{{ end -}}
{{- with $a.engine.socketMemMb }}{{ $_ := set $engine "socketMemMb" . }}{{ end -}}
{{- with $a.engine.extraEalArgs }}{{ $_ := set $engine "extraEalArgs" . }}{{ end -}}
{{- range $k := list "poolQueuePairs" "rxDescriptors" "txDescriptors" "idleSweepMicros" }}{{ if not (kindIs "invalid" (get $a.engine $k)) }}{{ $_ := set $engine $k (int (get $a.engine $k)) }}{{ end }}{{ end -}}
{{- if $a.engine.jumbo }}{{ $_ := set $engine "jumbo" true }}{{ end -}}
{{- $cfg := dict
  "log" (dict "level" $a.logLevel)
  "engine" $engine
  "kubernetes" (dict "enabled" true "socketDir" $a.socketDir "nosymfollowSocketRoot" true "allowVirtualDevices" $a.allowVirtualDevices "leaseRenewSeconds" (int $a.leaseRenewSeconds))
  "devicePlugin" (dict "enabled" $a.devicePlugin.enabled "pluginDir" $a.devicePlugin.pluginDir "devinfoDir" $a.devicePlugin.devinfoDir "namespaceCheck" $a.devicePlugin.namespaceCheck)
  "control" (dict "enabled" $a.control.enabled "ipcDir" $a.control.ipcDir)
  "metrics" (dict "enabled" true "address" (printf "%s:%d" (ternary "0.0.0.0" "127.0.0.1" $exposed) (int $a.metrics.port)) "authorization" $exposed "podResourcesSocket" (ternary (printf "%s/kubelet.sock" $a.podResources.dir) "" $a.podResources.enabled))
  "sriov" (dict "bindVfio" $a.sriov.bindVfio "setMac" $a.sriov.setMac "vfProgrammer" (default "netlink" $a.sriov.vfProgrammer) "vfLimits" (default (dict) $a.sriov.vfLimits))
  "cni" (dict "enabled" $a.cni.enabled "socket" (printf "%s/agent.sock" $a.cni.socketDir) "statePath" (printf "%s/attachments.json" $a.cni.stateDir) "allocationCheck" $a.cni.allocationCheck)
  "dra" (dict "enabled" $a.dra.enabled "registryDir" (printf "%s/plugins_registry" $a.dra.kubeletDir) "pluginDir" (printf "%s/plugins/vio4wd.io" $a.dra.kubeletDir) "cdiDir" $a.dra.cdiDir "metadataDir" $a.dra.metadataDir "statePath" (printf "%s/dra-claims.json" $a.dra.stateDir))
-}}
{{- if and $a.cni.enabled $a.cni.allocationCheck (not $a.podResources.enabled) -}}
{{- fail "agent.cni.allocationCheck needs kubelet's pod-resources API: set agent.podResources.enabled=true (the default), or agent.cni.allocationCheck=false (then a network config can name any relay of the node as deviceID)" -}}
{{- end -}}
{{- if and $a.devicePlugin.enabled $a.devicePlugin.namespaceCheck (not $a.podResources.enabled) -}}
{{- fail "agent.devicePlugin.namespaceCheck needs kubelet's pod-resources API: set agent.podResources.enabled=true (the default), or agent.devicePlugin.namespaceCheck=false (then a pod of any namespace may be given any relay of a pool)" -}}
{{- end -}}
{{- toYaml (mergeOverwrite $cfg (deepCopy $a.extraConfig)) -}}
{{- end -}}

{{/* The DeviceClass name of a pool: vio4wd.io/<name> -> <name>.vio4wd.io (lower case, other characters as "-"). */}}
{{- define "vio4wd.dra.className" -}}
{{- $parts := splitList "/" . -}}
{{- printf "%s.%s" (regexReplaceAll "[^a-z0-9.-]" (lower (last $parts)) "-") (first $parts) -}}
{{- end -}}
