{{/* <release>, when it already names the chart, else <release>-<chart>;
at most 40 characters, so that "<fullname>-check" fits the 52 of a
CronJob name. */}}
{{- define "nac.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := .Values.nameOverride | default .Chart.Name -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nac.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Values.nameOverride | default .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: notatcompany
{{- end -}}

{{/* Labels that select component .name of the release (as in the first
release of the chart: a Deployment's selector cannot change on upgrade). */}}
{{- define "nac.selectorLabels" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "nac.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "nac.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "nac.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
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

{{/* The NATS credential's Secret key and mounted file name, per method. */}}
{{- define "nac.natsAuthFile" -}}
{{- $m := .root.Values.nats.auth.method -}}
{{- if eq $m "userPassword" }}nats-{{ .name }}-password:password
{{- else if eq $m "token" }}nats-{{ .name }}-token:token
{{- else if eq $m "nkey" }}nats-{{ .name }}.nk:seed.nk
{{- else if eq $m "creds" }}nats-{{ .name }}.creds:nats.creds
{{- else if ne $m "none" }}{{ fail (printf "nats.auth.method %q: want none, userPassword, token, nkey or creds" $m) }}
{{- end -}}
{{- end -}}

{{/* NATS authentication and TLS environment of service .name. */}}
{{- define "nac.natsEnv" -}}
{{- $auth := .root.Values.nats.auth -}}
{{- $tls := .root.Values.nats.tls -}}
{{- $m := $auth.method -}}
{{- if eq $m "userPassword" }}
- name: NAC_NATS_USER
  value: {{ required (printf "nats.auth.users.%s is required with userPassword" .name) (index $auth.users .name) | quote }}
- name: NAC_NATS_PASSWORD_FILE
  value: /nats-auth/password
{{- else if eq $m "token" }}
- name: NAC_NATS_TOKEN_FILE
  value: /nats-auth/token
{{- else if eq $m "nkey" }}
- name: NAC_NATS_NKEY_SEED_FILE
  value: /nats-auth/seed.nk
{{- else if eq $m "creds" }}
- name: NAC_NATS_CREDS_FILE
  value: /nats-auth/nats.creds
{{- end }}
{{- if $tls.caSecret }}
- name: NAC_NATS_TLS_CA_FILE
  value: /nats-tls/ca/ca.crt
{{- end }}
{{- if index $tls.clientCertSecrets .name }}
- name: NAC_NATS_TLS_CERT_FILE
  value: /nats-tls/client/tls.crt
- name: NAC_NATS_TLS_KEY_FILE
  value: /nats-tls/client/tls.key
{{- end }}
{{- end -}}

{{/* Mounts of the NATS credential and certificates; no subPath, so that
a rotated Secret reaches the pod and is read on the next reconnect. */}}
{{- define "nac.natsVolumeMounts" -}}
{{- if ne .root.Values.nats.auth.method "none" }}
- name: nats-auth
  mountPath: /nats-auth
  readOnly: true
{{- end }}
{{- if .root.Values.nats.tls.caSecret }}
- name: nats-tls-ca
  mountPath: /nats-tls/ca
  readOnly: true
{{- end }}
{{- if index .root.Values.nats.tls.clientCertSecrets .name }}
- name: nats-tls-client
  mountPath: /nats-tls/client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "nac.natsVolumes" -}}
{{- $auth := .root.Values.nats.auth -}}
{{- $tls := .root.Values.nats.tls -}}
{{- if ne $auth.method "none" }}
{{- $file := split ":" (include "nac.natsAuthFile" .) }}
- name: nats-auth
  secret:
    secretName: {{ $auth.existingSecret | default .root.Values.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $file._0 }}
        path: {{ $file._1 }}
{{- end }}
{{- if $tls.caSecret }}
- name: nats-tls-ca
  secret:
    secretName: {{ $tls.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- with index $tls.clientCertSecrets .name }}
- name: nats-tls-client
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end -}}
