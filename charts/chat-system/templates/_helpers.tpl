{{- define "chat-system.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chat-system.serviceAccountName" -}}
{{- default (include "chat-system.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "chat-system.selectorLabels" -}}
app.kubernetes.io/name: chat-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chat-system.labels" -}}
{{ include "chat-system.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chat-system
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
