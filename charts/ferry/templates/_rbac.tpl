{{/* What the operator does with the API, as RBAC rules: docs/install.md explains each. */}}
{{- define "ferry.namespacedRules" -}}
# RealtimeAPIs: kopf watches them and keeps its finalizer and progress annotations on them.
- apiGroups: [ferry.dev]
  resources: [realtimeapis]
  verbs: [get, list, watch, patch]
- apiGroups: [ferry.dev]
  resources: [realtimeapis/status]
  verbs: [get, patch]
# Owner references of the API's Deployment and Service block the API's deletion: an admission
# that checks it (OwnerReferencesPermissionEnforcement) wants update on the owner's finalizers.
- apiGroups: [ferry.dev]
  resources: [realtimeapis/finalizers]
  verbs: [update]
# Each API's Deployment (server-side apply, and the watch that keeps the status current), and
# its replicas, written through the scale subresource by the autoscaler. A canary's Deployment
# and Service are deleted once it is off the route and drained.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch]
# A rollback returns to the pod template a ReplicaSet of the Deployment still holds.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
# The indexes of each API's pods (autoscaler demand, what holds a rollout up), kept by a watch.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# Each API's HTTPRoute (server-side apply; the watch that follows its Gateway's verdict; deleted
# when the API no longer has a Gateway). The watch also reads every other route of the watched
# namespaces: an older one on the same hostname and path gets an API's requests (RouteConflict).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}
{{- define "ferry.clusterRules" -}}
# The Gateway an API's route attaches to, in whichever namespace it is: its address makes the
# URL in the API's status.endpoint.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways]
  verbs: [get]
# kopf finds the RealtimeAPI resource through the CRDs.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.watchNamespaces }}
# kopf follows which of the watched namespaces exist.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}
{{- if include "ferry.capacityLoop" . }}
# The capacity loop (node groups with an asgName): the groups' nodes and every pod on them, in
# any namespace, pending Ferry pods; it cordons the nodes it scales in, and posts their Events
# in "default", as the kubelet does for nodes.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}
{{- end -}}

{{/* "true" when a node group has an Auto Scaling group: the operator then runs its capacity loop. */}}
{{- define "ferry.capacityLoop" -}}
{{- range .Values.nodeGroups -}}
{{- if .asgName }}true{{ end -}}
{{- end -}}
{{- end -}}
