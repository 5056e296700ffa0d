{{/* Full name: the release name, or release-chart when the release name lacks the chart name. */}}
{{- define "gpu-headroom.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. managed-by is Helm: headroomd only ever touches objects
     labelled app.kubernetes.io/managed-by=gpu-headroom (its placeholders). */}}
{{- define "gpu-headroom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpu-headroom
{{- end -}}

{{/* Selector of the controller pods. It includes the instance label, which
     placeholder ReplicaSets never carry, so the Deployment never adopts them. */}}
{{- define "gpu-headroom.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "gpu-headroom.agentSelectorLabels" -}}
app.kubernetes.io/name: headroom-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "gpu-headroom.serviceAccountName" -}}
{{- default (include "gpu-headroom.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "gpu-headroom.leaseName" -}}
{{- default (include "gpu-headroom.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* image renders repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "gpu-headroom.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* validate refuses values that would make placeholders useless or harmful. It runs
     from the Deployment template, so helm install/upgrade/template all fail early. */}}
{{- define "gpu-headroom.validate" -}}
{{- $v := int .Values.priorityClass.value -}}
{{- if and (not .Values.priorityClass.allowOutsideRange) (ge $v 0) -}}
{{- fail (printf "priorityClass.value %d is >= 0: inference pods at the default priority 0 could not preempt placeholders. Use -10..-1, or set priorityClass.allowOutsideRange=true if you know why." $v) -}}
{{- end -}}
{{- if and (not .Values.priorityClass.allowOutsideRange) (lt $v -10) -}}
{{- fail (printf "priorityClass.value %d is below cluster-autoscaler's default expendable cutoff -10: placeholders would never trigger a scale-up. Use -10..-1, or set priorityClass.allowOutsideRange=true if you know why." $v) -}}
{{- end -}}
{{- if le (int64 .Values.budgetGPUs) 0 -}}
{{- fail "budgetGPUs must be a positive hard cap on placeholder GPUs" -}}
{{- end -}}
{{- end -}}

{{/* args are headroomd's flags. The e2e test runs headroomd with exactly these. */}}
{{- define "gpu-headroom.args" -}}
- --budget-gpus={{ int64 .Values.budgetGPUs }}
- --config-map={{ include "gpu-headroom.fullname" . }}
- --owner-deployment={{ include "gpu-headroom.fullname" . }}
- --priority-class={{ .Values.priorityClass.name }}
- --priority-value={{ int .Values.priorityClass.value }}
- --create-priority-class={{ not .Values.priorityClass.create }}
{{- if .Values.priorityClass.allowOutsideRange }}
- --allow-priority-outside-range
{{- end }}
- --leader-elect={{ .Values.leaderElection.enabled }}
- --lease-name={{ include "gpu-headroom.leaseName" . }}
- --pause-image={{ .Values.pauseImage }}
- --prepull={{ .Values.prepull }}
- --forecast={{ .Values.forecast }}
{{- if .Values.forecast }}
- --checkpoint-interval={{ .Values.checkpointInterval }}
{{- end }}
- --dry-run={{ .Values.dryRun }}
- --resync={{ .Values.resync }}
- --log-level={{ .Values.logLevel }}
- --kube-api-qps={{ .Values.kubeAPI.qps }}
- --kube-api-burst={{ .Values.kubeAPI.burst }}
- --metrics-addr=:{{ .Values.metrics.port }}
- --probe-addr=:{{ .Values.probes.port }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
