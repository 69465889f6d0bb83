{{/* Names: the release's name, with "-ferry" unless it already says ferry. */}}
{{- define "ferry.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "ferry.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferry.labels" -}}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ferry
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ferry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "ferry.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The operator's image: by digest when one is given, else by tag (default: appVersion). */}}
{{- define "ferry.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* A ServiceAccount's annotations: the IAM role (IRSA) beside any others; empty if none. */}}
{{- define "ferry.accountAnnotations" -}}
{{- $annotations := deepCopy .annotations -}}
{{- if .roleArn -}}
{{- $_ := set $annotations "eks.amazonaws.com/role-arn" .roleArn -}}
{{- end -}}
{{- with $annotations -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{/* Non-empty when watchNamespaces holds a kopf pattern (a glob or a negation), not only names. */}}
{{- define "ferry.namespaceGlobs" -}}
{{- range .Values.watchNamespaces -}}
{{- if regexMatch "[*?!]" . }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* Settings the operator cannot start with fail here, with the same reason, before install. */}}
{{- define "ferry.checks" -}}
{{- if eq .Values.rbac.scope "namespaced" -}}
{{- if not .Values.watchNamespaces -}}
{{- fail "rbac.scope namespaced grants access per namespace: list them in watchNamespaces" -}}
{{- end -}}
{{- if include "ferry.namespaceGlobs" . -}}
{{- fail (printf "rbac.scope namespaced needs namespaces by name, not patterns: %s" (join ", " .Values.watchNamespaces)) -}}
{{- end -}}
{{- end -}}
{{- $names := list -}}
{{- $asgs := dict -}}
{{- range $index, $group := .Values.nodeGroups -}}
{{- with $group.allocatable -}}
{{- /* Above 0 is a digit other than 0: the operator rounds any amount up to 1m or 1 byte. */ -}}
{{- if not (and (regexMatch "[1-9]" (toString .cpu)) (regexMatch "[1-9]" (toString .memory))) -}}
{{- fail (printf "nodeGroups[%d] (%s): allocatable cpu and memory must be above 0 (cpu %v, memory %v)" $index $group.name .cpu .memory) -}}
{{- end -}}
{{- end -}}
{{- $min := int ($group.minSize | default 0) -}}
{{- if and (hasKey $group "maxSize") (gt $min (int $group.maxSize)) -}}
{{- fail (printf "nodeGroups[%d] (%s): minSize %d is above maxSize %d" $index $group.name $min (int $group.maxSize)) -}}
{{- end -}}
{{- if has $group.name $names -}}
{{- fail (printf "nodeGroups names '%s' twice" $group.name) -}}
{{- end -}}
{{- $names = append $names $group.name -}}
{{- with $group.asgName -}}
{{- if hasKey $asgs . -}}
{{- fail (printf "nodeGroups: groups '%s' and '%s' both name Auto Scaling group '%s'; each needs its own" (get $asgs .) $group.name .) -}}
{{- end -}}
{{- $_ := set $asgs . $group.name -}}
{{- end -}}
{{- end -}}
{{- if and .Values.defaultNodeGroup (not (has .Values.defaultNodeGroup $names)) -}}
{{- fail (printf "defaultNodeGroup %q is not one of nodeGroups (%s)" .Values.defaultNodeGroup (join ", " $names)) -}}
{{- end -}}
{{- $ports := .Values.operator.ports -}}
{{- if eq (int $ports.liveness) (int $ports.metrics) -}}
{{- fail (printf "operator.ports.liveness and operator.ports.metrics are both %d: the liveness probe and the metrics each need their own port" (int $ports.liveness)) -}}
{{- end -}}
{{- /* A second definition of a variable the chart sets would win over the checked value. */ -}}
{{- range $index, $variable := .Values.operator.extraEnv -}}
{{- if hasPrefix "FERRY_" $variable.name -}}
{{- fail (printf "operator.extraEnv[%d] %s: variables named FERRY_* are set by the chart from its values" $index $variable.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ferry.fluentBit.labels" -}}
{{ include "ferry.labels" . }}
app.kubernetes.io/component: fluent-bit
{{- end -}}

{{- define "ferry.fluentBit.serviceAccountName" -}}
{{- if .Values.fluentBit.serviceAccount.create -}}
{{- .Values.fluentBit.serviceAccount.name | default (printf "%s-fluent-bit" (include "ferry.fullname" .)) -}}
{{- else -}}
{{- .Values.fluentBit.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}
