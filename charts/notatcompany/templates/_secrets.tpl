{{/* The keys of existingSecret that component .name reads, as
"<key> <NAC_*_FILE variable>" lines. */}}
{{- define "nac.secretFiles" -}}
{{- $v := .root.Values -}}
{{- if eq .name "ingest" -}}
{{- with $v.ingest.secrets -}}
{{- if .dataverseWebhookKey }}dataverse-webhook-key NAC_DATAVERSE_WEBHOOK_KEY_FILE
{{ end -}}
{{- if .dataverseOrgs }}dataverse-orgs NAC_DATAVERSE_ORGS_FILE
{{ end -}}
{{- if .profileSecret }}profile-secret NAC_PROFILE_SECRET_FILE
{{ end -}}
{{- if .profileSources }}profile-sources NAC_PROFILE_SOURCES_FILE
{{ end -}}
{{- if .adminToken }}admin-token NAC_ADMIN_TOKEN_FILE
{{ end -}}
{{- end -}}
{{- else if eq .name "writer" -}}
{{- if $v.writer.dataverseUrl }}dataverse-client-secret NAC_DATAVERSE_CLIENT_SECRET_FILE
{{ end -}}
{{- if $v.writer.dataverseTargets }}dataverse-targets NAC_DATAVERSE_TARGETS_FILE
{{ end -}}
{{- else if eq .name "nacctl" -}}
provisioning-client-secret NAC_DATAVERSE_CLIENT_SECRET_FILE
{{ if $v.ingest.secrets.dataverseWebhookKey }}dataverse-webhook-key NAC_DATAVERSE_WEBHOOK_KEY_FILE
{{ end -}}
{{- end -}}
{{- end -}}

{{- define "nac.secretEnv" -}}
{{- range splitList "\n" (include "nac.secretFiles" .) }}
{{- with . }}
{{- $f := splitList " " . }}
- name: {{ index $f 1 }}
  value: /secrets/{{ index $f 0 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "nac.secretMount" -}}
{{- if include "nac.secretFiles" . }}
- name: secrets
  mountPath: /secrets
  readOnly: true
{{- end }}
{{- end -}}

{{/* A projected volume of only the keys the pod reads; no subPath, so an
updated Secret reaches the pod. */}}
{{- define "nac.secretVolume" -}}
{{- if include "nac.secretFiles" . }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      - secret:
          name: {{ .root.Values.existingSecret }}
          items:
            {{- range splitList "\n" (include "nac.secretFiles" .) }}
            {{- with . }}
            - key: {{ index (splitList " " .) 0 }}
              path: {{ index (splitList " " .) 0 }}
            {{- end }}
            {{- end }}
{{- end }}
{{- end -}}
