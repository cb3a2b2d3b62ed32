{{/*
The chart name, or nameOverride.
*/}}
{{- define "rotor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, or the release name when it
already contains the chart name, or `<release>-<chart>`. Kubernetes names of these kinds
may have 253 characters, but labels only 63, so the name is cut to 63.
*/}}
{{- define "rotor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The `helm.sh/chart` label value.
*/}}
{{- define "rotor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of the release.
*/}}
{{- define "rotor.labels" -}}
helm.sh/chart: {{ include "rotor.chart" . }}
{{ include "rotor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the release's pods. They must not change between upgrades, because a
Deployment's selector is immutable.
*/}}
{{- define "rotor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rotor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount name. Without serviceAccount.create, serviceAccount.name is required,
so that the chart never grants rotor's permissions to a namespace's `default` account.
*/}}
{{- define "rotor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rotor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The name of the metrics Service, which is also the `job` label of rotor's series when
Prometheus scrapes them through the chart's ServiceMonitor.
*/}}
{{- define "rotor.metricsServiceName" -}}
{{- printf "%s-metrics" (include "rotor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of the leader election Lease in the release namespace.
*/}}
{{- define "rotor.leaseName" -}}
{{- include "rotor.fullname" . }}
{{- end }}

{{/*
The container image reference: repository with the digest when one is set, otherwise
with the tag, which defaults to the chart's appVersion.
*/}}
{{- define "rotor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The RBAC rules rotor needs in every namespace it watches, shared by the ClusterRole and
the per-namespace Roles. Each rule carries the reason for its verbs.
*/}}
{{- define "rotor.watchRules" -}}
# rotor watches SecretRotation objects and reads one again before it writes its
# status. It never creates, updates, patches or deletes the object itself.
- apiGroups: ["rotor.dev"]
  resources: ["secretrotations"]
  verbs: ["get", "list", "watch"]
# rotor records progress and results in the status subresource with server-side
# apply, which is a patch.
- apiGroups: ["rotor.dev"]
  resources: ["secretrotations/status"]
  verbs: ["patch"]
# get: rotor reads the target Secret before it writes it and the Secret named by
# spec.provider.aws.auth.secretRef. list and watch: rotor watches the metadata of the
# Secrets labelled app.kubernetes.io/managed-by=rotor, but RBAC cannot restrict list
# and watch by label, so these verbs cover every Secret in the namespace.
# create and patch: rotor writes the target Secret with server-side apply, which is a
# patch and needs create when the Secret does not exist yet.
# rotor never updates or deletes a Secret. The garbage collector deletes an owned
# Secret together with its SecretRotation.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# rotor reports rotations and failures as Events. A repeated Event is patched to
# count the repetitions instead of being created again.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
