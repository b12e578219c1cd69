{{/* detour.fullname names every object: the release name when it contains "detour". */}}
{{- define "detour.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "detour" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-detour" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* detour.tlsSecret is the Secret holding the serving certificate, in either cert mode. */}}
{{- define "detour.tlsSecret" -}}
{{- include "detour.fullname" . }}-tls
{{- end -}}

{{/* detour.selectorLabels select the webhook's Pods; they never change after install. */}}
{{- define "detour.selectorLabels" -}}
app.kubernetes.io/name: detour
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "detour.labels" -}}
{{ include "detour.selectorLabels" . }}
app.kubernetes.io/part-of: detour
{{- end -}}

{{- define "detour.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "detour.validate" -}}
{{- if not (has .Values.certs.mode (list "self" "cert-manager")) -}}
{{- fail (printf "certs.mode must be self or cert-manager, not %q" .Values.certs.mode) -}}
{{- end -}}
{{- if not (has .Values.webhook.failurePolicy (list "Ignore" "Fail")) -}}
{{- fail (printf "webhook.failurePolicy must be Ignore or Fail, not %q" .Values.webhook.failurePolicy) -}}
{{- end -}}
{{- $t := int .Values.webhook.timeoutSeconds -}}
{{- if or (lt $t 1) (gt $t 30) -}}
{{- fail (printf "webhook.timeoutSeconds must be 1 to 30 (the apiserver's limits), not %v" .Values.webhook.timeoutSeconds) -}}
{{- end -}}
{{- end -}}
