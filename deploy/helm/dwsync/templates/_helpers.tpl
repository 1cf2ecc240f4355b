{{/* Names and labels. */}}
{{- define "dwsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dwsync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: <fullname>-<component>. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "dwsync.componentName" -}}
{{- printf "%s-%s" (include "dwsync.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dwsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dwsync.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dwsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "dwsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: dwsync
{{- end -}}

{{- define "dwsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dwsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dwsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
TOML rendering of a values block: scalars and arrays first, then sub-tables ([a.b]) and arrays
of tables ([[a]]). Numbers are written as integers when they are whole (YAML numbers reach the
templates as floats; the services refuse 5000.0 where they expect an integer). Null values are
left out (the service's default applies). Call with (dict "path" "" "data" $map).
*/}}
{{- define "dwsync.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "dwsync.toml.value" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (floor .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "int32" .) (kindIs "uint64" .) -}}
{{ . }}
{{- else if kindIs "slice" . -}}
[{{- range $i, $e := . -}}{{- if $i }}, {{ end -}}{{- include "dwsync.toml.value" $e -}}{{- end -}}]
{{- else -}}
{{- fail (printf "dwsync: cannot write %v (%s) as a TOML value" . (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{- define "dwsync.toml.isTables" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) -}}{{- if kindIs "map" (first .) -}}true{{- end -}}{{- end -}}
{{- end -}}

{{- define "dwsync.toml.body" -}}
{{- $path := .path -}}
{{- range $k, $v := .data -}}
{{- if not (or (kindIs "invalid" $v) (kindIs "map" $v) (include "dwsync.toml.isTables" $v)) }}
{{ include "dwsync.toml.key" $k }} = {{ include "dwsync.toml.value" $v }}
{{- end -}}
{{- end -}}
{{- range $k, $v := .data -}}
{{- $sub := include "dwsync.toml.key" $k -}}
{{- if $path }}{{ $sub = printf "%s.%s" $path $sub }}{{ end -}}
{{- if kindIs "map" $v }}

[{{ $sub }}]
{{- include "dwsync.toml.body" (dict "path" $sub "data" $v) -}}
{{- else if include "dwsync.toml.isTables" $v -}}
{{- range $v }}

[[{{ $sub }}]]
{{- include "dwsync.toml.body" (dict "path" $sub "data" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The [kafka] section every service shares, as a dict for dwsync.toml.body. */}}
{{- define "dwsync.kafkaSection" -}}
{{- $k := .Values.kafka -}}
{{- $s := dict "bootstrap_servers" $k.bootstrapServers "client_id_prefix" $k.clientIdPrefix "metadata_timeout_ms" $k.metadataTimeoutMs "check_interval_ms" $k.checkIntervalMs "security_protocol" $k.securityProtocol "sasl_mechanism" $k.sasl.mechanism "sasl_username" $k.sasl.username -}}
{{- if $k.tls.caSecret.name -}}
{{- $_ := set $s "ssl_ca_location" "/etc/dwsync/kafka-ca/ca.crt" -}}
{{- end -}}
{{- if $k.tls.clientCertSecret.name -}}
{{- $_ := set $s "ssl_certificate_location" "/etc/dwsync/kafka-tls/tls.crt" -}}
{{- $_ := set $s "ssl_key_location" "/etc/dwsync/kafka-tls/tls.key" -}}
{{- end -}}
{{- toYaml $s -}}
{{- end -}}

{{/*
A service's whole TOML: [kafka], then its config block with http.listen (and extra keys) set.
Call with (dict "root" $ "component" "ingest" "config" $cfg "set" (dict "http" (dict "listen" ...))).
*/}}
{{- define "dwsync.serviceToml" -}}
{{- $cfg := deepCopy .config -}}
{{- range $section, $keys := .set -}}
{{- $existing := get $cfg $section | default dict -}}
{{- $_ := set $cfg $section (merge (deepCopy $keys) $existing) -}}
{{- end -}}
{{- $_ := set $cfg "kafka" (include "dwsync.kafkaSection" .root | fromYaml) -}}
# dwsync-{{ .component }}: rendered by the Helm chart from values.yaml (kafka, {{ .component }}.config).
# Secrets are not here: they come from Kubernetes Secrets as DWSYNC_* environment variables
# (DWSYNC_KAFKA__SASL_PASSWORD, DWSYNC_SEAL_KEY, ...).
{{- include "dwsync.toml.body" (dict "path" "" "data" $cfg) }}
{{ end -}}

{{/* The http section the chart owns for a component. */}}
{{- define "dwsync.httpSet" -}}
{{- dict "http" (dict "listen" (printf "0.0.0.0:%d" (int .root.Values.metrics.service.port))) | toYaml -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: longer than the shutdown delay plus grace. */}}
{{- define "dwsync.terminationGrace" -}}
{{- $http := .values.config.http | default dict -}}
{{- $ms := add (int64 (default 0 $http.shutdown_delay_ms)) (int64 (default 10000 $http.shutdown_grace_ms)) -}}
{{- $min := div (add $ms 999) 1000 -}}
{{- if kindIs "invalid" .values.terminationGracePeriodSeconds -}}
{{- add $min 15 -}}
{{- else if le (int64 .values.terminationGracePeriodSeconds) $min -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must be longer than http.shutdown_delay_ms + shutdown_grace_ms (%d s)" .component .values.terminationGracePeriodSeconds $min) -}}
{{- else -}}
{{- int64 .values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/*
An environment variable from a Secret, or nothing when no Secret provides it.
(dict "root" $ "env" "DWSYNC_SEAL_KEY" "item" "sealKey" "override" $ref "optional" false)
Precedence: the override Secret (name, key), then secrets.existingSecret, then the chart's own
Secret when secrets.<item> has a value.
*/}}
{{- define "dwsync.secretEnv" -}}
{{- $s := .root.Values.secrets -}}
{{- $override := .override | default dict -}}
{{- if $override.name }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ $override.name }}
      key: {{ $override.key }}
{{- else if $s.existingSecret }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ get $s.keys .item }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- else if get $s .item }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "dwsync.fullname" .root }}
      key: {{ get $s.keys .item }}
{{- end }}
{{- end -}}

{{/* The Kafka password's env, with a check that SASL has a password source. */}}
{{- define "dwsync.kafkaPasswordEnv" -}}
{{- $k := .Values.kafka -}}
{{- if has $k.securityProtocol (list "sasl_plaintext" "sasl_ssl") -}}
{{- $env := include "dwsync.secretEnv" (dict "root" . "env" "DWSYNC_KAFKA__SASL_PASSWORD" "item" "kafkaSaslPassword" "override" $k.sasl.passwordSecret) -}}
{{- if not $env -}}
{{- fail (printf "kafka.securityProtocol %s needs the SASL password from a Secret: set kafka.sasl.passwordSecret.name, secrets.existingSecret or secrets.kafkaSaslPassword" $k.securityProtocol) -}}
{{- end -}}
{{- $env -}}
{{- end -}}
{{- end -}}

{{/*
The archive bucket's secret key (archiver and backfill), with a check that a Secret provides it.
(dict "root" $ "env" "DWSYNC_STORE__SECRET_ACCESS_KEY")
*/}}
{{- define "dwsync.archiveSecretEnv" -}}
{{- /* No access key id: the AWS default credential chain (IRSA, instance profile), no secret. */ -}}
{{- if .root.Values.archiver.config.store.access_key_id -}}
{{- $env := include "dwsync.secretEnv" (dict "root" .root "env" .env "item" "archiveSecretAccessKey" "override" .root.Values.archiver.secretAccessKeySecret) -}}
{{- if not $env -}}
{{- fail "archiver.config.store.access_key_id needs the archive bucket's secret key from a Secret: set archiver.secretAccessKeySecret.name, secrets.existingSecret or secrets.archiveSecretAccessKey (or leave access_key_id empty for the AWS default credential chain)" -}}
{{- end -}}
{{- $env -}}
{{- end -}}
{{- end -}}

{{/*
The pod template of a workload.
(dict "root" $ "component" "ingest" "values" .Values.ingest "command" "dwsync-ingest"
      "env" <yaml list of extra env, string> "configKind" "ConfigMap"|"Secret" "ports" <yaml string>)
*/}}
{{- define "dwsync.podTemplate" -}}
{{- $root := .root -}}
{{- $v := .values -}}
metadata:
  labels:
    {{- include "dwsync.labels" . | nindent 4 }}
  annotations:
    checksum/config: {{ .configChecksum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "dwsync.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ include "dwsync.terminationGrace" . }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "dwsync.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["/usr/bin/tini", "--", {{ .command | quote }}, "--config", "/etc/dwsync/{{ .component }}.toml"]
      ports:
        - name: http-metrics
          containerPort: {{ $root.Values.metrics.service.port }}
          protocol: TCP
        {{- with .ports }}
        {{- . | nindent 8 }}
        {{- end }}
      env:
        {{- with $root.Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with include "dwsync.kafkaPasswordEnv" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .env | default "" | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http-metrics
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http-metrics
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 1
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/dwsync/{{ .component }}.toml
          subPath: {{ .component }}.toml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if eq .component "backfill" }}
        - name: spill
          mountPath: {{ $v.config.backfill.spill_dir | default "/var/lib/dwsync/spill" }}
        {{- end }}
        {{- if $root.Values.kafka.tls.caSecret.name }}
        - name: kafka-ca
          mountPath: /etc/dwsync/kafka-ca
          readOnly: true
        {{- end }}
        {{- if $root.Values.kafka.tls.clientCertSecret.name }}
        - name: kafka-tls
          mountPath: /etc/dwsync/kafka-tls
          readOnly: true
        {{- end }}
        {{- if and (eq .component "control") $root.Values.control.tls.secretName }}
        - name: api-tls
          mountPath: /etc/dwsync/api-tls
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      {{- if eq .configKind "Secret" }}
      secret:
        secretName: {{ include "dwsync.componentName" . }}-config
      {{- else }}
      configMap:
        name: {{ include "dwsync.componentName" . }}-config
      {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if eq .component "backfill" }}
    - name: spill
      emptyDir:
        sizeLimit: {{ $v.spillVolume.sizeLimit }}
    {{- end }}
    {{- with $root.Values.kafka.tls.caSecret }}
    {{- if .name }}
    - name: kafka-ca
      secret:
        secretName: {{ .name }}
        items:
          - key: {{ .key }}
            path: ca.crt
    {{- end }}
    {{- end }}
    {{- if and (eq .component "control") $root.Values.control.tls.secretName }}
    - name: api-tls
      secret:
        secretName: {{ $root.Values.control.tls.secretName }}
    {{- end }}
    {{- with $root.Values.kafka.tls.clientCertSecret }}
    {{- if .name }}
    - name: kafka-tls
      secret:
        secretName: {{ .name }}
        items:
          - key: {{ .certKey }}
            path: tls.crt
          - key: {{ .keyKey }}
            path: tls.key
    {{- end }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The handoff topic ingest writes: the default of control's and the backfill's. */}}
{{- define "dwsync.handoffTopic" -}}
{{- .Values.ingest.config.ingest.handoff_topic | default "dwsync.handoff" -}}
{{- end -}}

{{/* Whether a component is deployed: the archiver and the backfill only with history.enabled. */}}
{{- define "dwsync.enabled" -}}
{{- if or (not (has .component (list "archiver" "backfill"))) .root.Values.history.enabled -}}true{{- end -}}
{{- end -}}

{{/* Each service's TOML (used by its ConfigMap and for the pods' checksum annotation). */}}
{{- define "dwsync.config.ingest" -}}
{{- $set := include "dwsync.httpSet" (dict "root" .) | fromYaml -}}
{{- include "dwsync.serviceToml" (dict "root" . "component" "ingest" "config" .Values.ingest.config "set" $set) -}}
{{- end -}}

{{- define "dwsync.config.uploader" -}}
{{- $set := include "dwsync.httpSet" (dict "root" .) | fromYaml -}}
{{- include "dwsync.serviceToml" (dict "root" . "component" "uploader" "config" .Values.uploader.config "set" $set) -}}
{{- end -}}

{{- define "dwsync.config.control" -}}
{{- $set := include "dwsync.httpSet" (dict "root" .) | fromYaml -}}
{{- $api := dict "listen" (printf "0.0.0.0:%d" (int .Values.control.service.port)) -}}
{{- /* HTTPS from a kubernetes.io/tls Secret mounted at /etc/dwsync/api-tls (reloaded when it
changes); without one, plain HTTP only when allowPlainHttp says so (control refuses otherwise). */ -}}
{{- if .Values.control.tls.secretName -}}
{{- $_ := set $api "tls_cert_file" "/etc/dwsync/api-tls/tls.crt" -}}
{{- $_ := set $api "tls_key_file" "/etc/dwsync/api-tls/tls.key" -}}
{{- end -}}
{{- $_ := set $api "allow_plain_http" .Values.control.allowPlainHttp -}}
{{- $_ := set $set "api" $api -}}
{{- /* Initial syncs need the archiver and the backfill: on exactly when history is. */ -}}
{{- $initial := .Values.control.config.initial_sync | default dict -}}
{{- $_ := set $set "initial_sync" (dict "enabled" .Values.history.enabled "handoff_topic" ($initial.handoff_topic | default (include "dwsync.handoffTopic" .))) -}}
{{- include "dwsync.serviceToml" (dict "root" . "component" "control" "config" .Values.control.config "set" $set) -}}
{{- end -}}

{{- define "dwsync.config.archiver" -}}
{{- $set := include "dwsync.httpSet" (dict "root" .) | fromYaml -}}
{{- include "dwsync.serviceToml" (dict "root" . "component" "archiver" "config" .Values.archiver.config "set" $set) -}}
{{- end -}}

{{- /*
The backfill reads the archive the archiver writes: its [archive] is the archiver's store
(bucket, prefix, region, endpoint, path style, access key id) and its archive.retention_days, so
the two cannot drift; the
secret key comes from the same Secret (DWSYNC_ARCHIVE__SECRET_ACCESS_KEY).
*/ -}}
{{- define "dwsync.config.backfill" -}}
{{- $set := include "dwsync.httpSet" (dict "root" .) | fromYaml -}}
{{- $store := .Values.archiver.config.store -}}
{{- $archive := dict -}}
{{- range $key := list "bucket" "prefix" "region" "endpoint" "force_path_style" "access_key_id" -}}
{{- /* A null value (endpoint: AWS S3) is no key at all once Helm has merged the values. */ -}}
{{- if hasKey $store $key -}}
{{- $_ := set $archive $key (get $store $key) -}}
{{- end -}}
{{- end -}}
{{- /* The same retention as the archiver: a purge deletes an object past it instead of rewriting it. */ -}}
{{- with (.Values.archiver.config.archive | default dict).retention_days -}}
{{- $_ := set $archive "retention_days" . -}}
{{- end -}}
{{- $_ := set $set "archive" $archive -}}
{{- $handoff := .Values.backfill.config.handoff | default dict -}}
{{- $group := $handoff.archiver_group_id | default .Values.archiver.config.handoff.group_id -}}
{{- $_ := set $set "handoff" (dict "topic" ($handoff.topic | default (include "dwsync.handoffTopic" .)) "archiver_group_id" $group) -}}
{{- include "dwsync.serviceToml" (dict "root" . "component" "backfill" "config" .Values.backfill.config "set" $set) -}}
{{- end -}}
