-- Verdict reasons are one closed set (VerdictReason in the OpenAPI document). Verdicts recorded by
-- earlier versions in other spellings are mapped onto it; the word they used is kept in
-- `detail.original_reason`.
with legacy as (
    select id,
           verdict->>'reason' as old,
           case verdict->>'reason'
               when 'render_error' then 'RenderFailed'
               when 'release_locked' then 'ReleaseLocked'
               when 'namespace_not_found' then 'NamespaceNotFound'
               when 'api_error' then 'KubernetesApiError'
               when 'chart_unavailable' then 'ChartUnavailable'
               when 'helm_failed' then 'HelmFailed'
               when 'helm_error' then 'HelmFailed'
               when 'helm_timeout' then 'Timeout'
               when 'timeout' then 'Timeout'
               when 'cancelled' then 'Cancelled'
               when 'interrupted' then 'Interrupted'
               when 'invalid_tracking_policy' then 'InvalidTrackingPolicy'
               when 'secret_values_unavailable' then 'SecretValuesUnavailable'
               when 'tracker_error' then 'InternalError'
               when 'tracker_stopped' then 'InternalError'
               when 'Evicted' then 'PodFailed'
               else case
                   when verdict->>'reason' in (
                       'CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'ErrImageNeverPull',
                       'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError',
                       'RunContainerError', 'PreStartHookError', 'PostStartHookError',
                       'ReadinessProbeFailed', 'PodFailed', 'FailedCreate',
                       'ProgressDeadlineExceeded', 'BackoffLimitExceeded', 'DeadlineExceeded',
                       'ClaimLost', 'NoActivityTimeout'
                   ) then verdict->>'reason'
                   -- A container's termination reason (Error, OOMKilled, ...): a crash.
                   when verdict->>'message' like '%exit code%' then 'CrashLoopBackOff'
                   when verdict->'resource'->>'kind' = 'Job' then 'JobFailed'
                   when verdict->'resource'->>'kind' = 'Pod' then 'PodFailed'
                   when verdict->'resource'->>'kind' is not null then 'CustomResourceFailed'
                   else 'HelmFailed'
               end
           end as new
    from deploys
    where verdict is not null
)
update deploys
set verdict = jsonb_set(
    jsonb_set(deploys.verdict, '{reason}', to_jsonb(legacy.new)),
    '{detail}',
    coalesce(deploys.verdict->'detail', '{}'::jsonb)
        || jsonb_build_object('original_reason', legacy.old)
)
from legacy
where deploys.id = legacy.id and legacy.new is distinct from legacy.old;
