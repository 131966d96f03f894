{{/* Checks across values that the schema cannot express. */}}
{{- define "nac.validate" -}}
{{- $v := .Values -}}
{{- $s := $v.ingest.secrets -}}
{{- if not (or $s.dataverseWebhookKey $s.dataverseOrgs) }}{{ fail "ingest.secrets: dataverseWebhookKey or dataverseOrgs must be true (ingest needs a way to authenticate Dataverse)" }}{{ end -}}
{{- if not (or $s.profileSecret $s.profileSources) }}{{ fail "ingest.secrets: profileSecret or profileSources must be true (ingest needs a way to authenticate profile events)" }}{{ end -}}
{{- range $name := list "ingest" "validator" }}
{{- $a := (index $v $name).autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}{{ fail (printf "%s.autoscaling: minReplicas %v is above maxReplicas %v" $name $a.minReplicas $a.maxReplicas) }}{{ end }}
{{- end }}
{{- if and $v.linkedinStatusColumn (eq $v.linkedinStatusColumn $v.flagColumn) }}{{ fail "linkedinStatusColumn: the flag column itself holds our own writes, not an independent source; leave it empty or name LinkedIn's column beside flagColumn" }}{{ end -}}
{{- if and $v.ingress.enabled (not $v.ingress.host) }}{{ fail "ingress.host is required with ingress.enabled (Dynamics posts to https://<host>/webhooks/dataverse)" }}{{ end -}}
{{- if $v.writer.dataverseUrl }}
{{- if not (and $v.writer.tokenUrl $v.writer.clientId) }}{{ fail "writer.tokenUrl and writer.clientId are required with writer.dataverseUrl" }}{{ end }}
{{- end }}
{{- if or $v.provisioning.job.enabled $v.provisioning.check.enabled }}
{{- if not (and $v.provisioning.dataverseUrl $v.provisioning.tokenUrl $v.provisioning.clientId) }}{{ fail "provisioning.dataverseUrl, provisioning.tokenUrl and provisioning.clientId are required with provisioning.job.enabled or provisioning.check.enabled" }}{{ end }}
{{- if not (include "nac.webhookUrl" .) }}{{ fail "provisioning.webhookUrl (or ingress.enabled with ingress.host) is required with provisioning.job.enabled or provisioning.check.enabled: it is where Dynamics posts its webhooks" }}{{ end }}
{{- end }}
{{- end -}}


{{/* The ingest's public webhook URL that provisioning registers in Dynamics:
provisioning.webhookUrl, else the Ingress host's. */}}
{{- define "nac.webhookUrl" -}}
{{- if .Values.provisioning.webhookUrl -}}
{{ .Values.provisioning.webhookUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
https://{{ .Values.ingress.host }}/webhooks/dataverse
{{- end -}}
{{- end -}}
