{{/* Chart name, truncated for label values. */}}
{{- define "star.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name: <release>-star, or the release name when it already says star. */}}
{{- define "star.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "star.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "star.selectorLabels" -}}
app.kubernetes.io/name: {{ include "star.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "star.labels" -}}
helm.sh/chart: {{ include "star.chart" . }}
{{ include "star.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: star
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The ServiceAccount the pipeline's pods run as. */}}
{{- define "star.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "star.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount of the upload hook (only KFP API rights, no Kubernetes API token mounted). */}}
{{- define "star.uploaderServiceAccountName" -}}
{{- printf "%s-uploader" (include "star.fullname" .) -}}
{{- end -}}

{{/* Name of the object-store Secret: the user's, or the one the chart creates; empty when neither. */}}
{{- define "star.objectStoreSecretName" -}}
{{- if .Values.objectStore.existingSecret -}}
{{- .Values.objectStore.existingSecret -}}
{{- else if or .Values.objectStore.accessKeyId .Values.objectStore.secretAccessKey -}}
{{- printf "%s-object-store" (include "star.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
A project image: <registry>/<name>:<tag>, or <registry>/<name>@<digest>.
Call with (dict "root" $ "image" "trainGpu").
*/}}
{{- define "star.image" -}}
{{- $root := .root -}}
{{- $img := index $root.Values.images .image -}}
{{- $repo := printf "%s/%s" (trimSuffix "/" $root.Values.images.registry) $img.name -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $root.Values.images.tag) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets block, or nothing. */}}
{{- define "star.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Pod-level security context shared by every pod of the chart (values: podSecurityContext). */}}
{{- define "star.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Container-level security context shared by every container of the chart (values: securityContext). */}}
{{- define "star.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/* kfp-launcher "providers" document for the pipeline root's scheme. */}}
{{- define "star.launcherProviders" -}}
{{- $root := .Values.kfpLauncher.defaultPipelineRoot -}}
{{- $secret := include "star.objectStoreSecretName" . -}}
{{- $scheme := regexReplaceAll "://.*$" $root "" -}}
{{- if or (eq $scheme "s3") (eq $scheme "minio") -}}
{{- $endpoint := .Values.objectStore.endpointUrl -}}
{{ $scheme }}:
  default:
    endpoint: {{ if $endpoint }}{{ regexReplaceAll "^https?://" $endpoint "" | trimSuffix "/" | quote }}{{ else }}"s3.amazonaws.com"{{ end }}
    disableSSL: {{ hasPrefix "http://" $endpoint }}
    region: {{ .Values.objectStore.region | quote }}
    forcePathStyle: {{ .Values.objectStore.forcePathStyle }}
    credentials:
{{- if $secret }}
      fromEnv: false
      secretRef:
        secretName: {{ $secret }}
        accessKeyKey: AWS_ACCESS_KEY_ID
        secretKeyKey: AWS_SECRET_ACCESS_KEY
{{- else }}
      fromEnv: true
{{- end }}
{{- else if eq $scheme "gs" -}}
gs:
  default:
    credentials:
      fromEnv: true
{{- end -}}
{{- end -}}

{{/* What the compiled pipeline takes from the chart's values (one place for each): the images, where its
     artifacts go, and how its steps reach object storage (the Secret this chart names or creates, endpoint,
     region, addressing). Emits "key=value" strings for `star upload --set`, one per line. */}}
{{- define "star.pipelineSets" -}}
{{- $v := .Values.images -}}
cluster.images.registry={{ trimSuffix "/" $v.registry }}
cluster.images.tag={{ default .Chart.AppVersion $v.tag }}
{{- range $key, $field := dict "runtime" "runtime" "trainGpu" "train_gpu" "vllm" "vllm" "trainTpu" "train_tpu" }}
{{- $img := index $v $key }}
cluster.images.{{ $field }}={{ $img.name }}{{ if $img.digest }}@{{ $img.digest }}{{ end }}
{{- end }}
{{- with $v.pullSecrets }}
cluster.images.pull_secrets={{ toJson . }}
{{- end }}
{{- with include "star.objectStoreSecretName" . }}
cluster.storage.secret={{ . }}
{{- end }}
{{- with .Values.pipeline.root }}
cluster.pipeline_root={{ . }}
{{- end }}
{{- with .Values.objectStore.endpointUrl }}
storage.endpoint_url={{ . }}
{{- end }}
{{- with .Values.objectStore.region }}
storage.region={{ . }}
{{- end }}
storage.path_style={{ .Values.objectStore.forcePathStyle }}
{{- end -}}
