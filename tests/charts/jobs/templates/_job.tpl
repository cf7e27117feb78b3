{{/* The pod template of a Job; `.job` holds its values, `.image` the image. */}}
{{- define "jobs.spec" -}}
backoffLimit: {{ .job.backoffLimit }}
template:
  metadata:
    {{- with .job.behavior }}
    annotations:
      # How the simulated cluster (kubesim) runs the container.
      sim.rollcall.dev/behavior: {{ . | quote }}
    {{- end }}
  spec:
    restartPolicy: Never
    containers:
      - name: {{ .job.name }}
        image: {{ .image }}
{{- end }}
