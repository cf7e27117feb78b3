{{- define "rollcall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rollcall.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "rollcall.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "rollcall.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "rollcall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollcall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rollcall.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "rollcall.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rollcall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollcall.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rollcall.secretName" -}}
{{- default (include "rollcall.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
The rules rollcall needs in a namespace it deploys to: the tracker watches workloads' pods,
ReplicaSets and revisions, Events, and reads pods/log; helm keeps its release records in Secrets;
then what helm needs on the kinds the deployed charts install (rbac.deployedResources).
*/}}
{{- define "rollcall.rules" -}}
- apiGroups: [""]
  resources: [pods, events]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [replicasets, controllerrevisions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch, delete]
{{- range .Values.rbac.deployedResources }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  {{- if has "rbac.authorization.k8s.io" .apiGroups }}
  verbs: [get, list, watch, create, update, patch, delete, bind, escalate]
  {{- else }}
  verbs: [get, list, watch, create, update, patch, delete]
  {{- end }}
{{- end }}
{{- end }}

{{/*
A value of the Secret, base64-encoded: the given one, else the one the installed Secret holds (so
that an upgrade keeps what an earlier install generated), else the generated one.
*/}}
{{- define "rollcall.keptSecret" -}}
{{- $value := .given }}
{{- if and (not $value) .existing }}
{{- $value = index .existing.data .key | default "" | b64dec }}
{{- end }}
{{- default .generated $value | b64enc | quote }}
{{- end }}
