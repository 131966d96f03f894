{{- define "nac.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "nac.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nac.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Environment every service shares. */}}
{{- define "nac.commonEnv" -}}
- name: NAC_NATS_URL
  value: {{ .Values.nats.url | quote }}
- name: NAC_STREAM_REPLICAS
  value: {{ .Values.nats.streamReplicas | quote }}
- name: NAC_OPS_ADDR
  value: ":9090"
- name: NAC_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: NAC_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
- name: NAC_SHUTDOWN_TIMEOUT
  value: "30s"
{{- end -}}
