-- Outgoing notifications (DESIGN §6.3): global subscriptions, the outbox (one row per event and
-- destination, written in the statement that writes the event) and every delivery attempt.

create table notification_subscriptions (
    id uuid primary key,
    name text not null,
    -- 'api': managed through /v1/subscriptions; 'config': [[notify.subscriptions]], rewritten at
    -- start-up from the configuration file.
    managed_by text not null check (managed_by in ('api', 'config')),
    url text not null,
    format text not null check (format in ('json', 'slack')),
    events text[] not null,
    -- `cluster/namespace/release` globs as given, and each part as a SQL like pattern for the
    -- outbox insert.
    targets text[] not null,
    cluster_likes text[] not null,
    namespace_likes text[] not null,
    release_likes text[] not null,
    -- API subscriptions: their own signing secret, sealed with the server key (bound to the id).
    secret_sealed text,
    -- Configured subscriptions: the name of a configured secret; null: the default secret.
    secret_name text,
    enabled boolean not null default true,
    -- Why it was disabled (e.g. the receiver answered 410 Gone).
    disabled_reason text,
    created_by text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (managed_by = 'config' or secret_sealed is not null)
);
create unique index notification_subscriptions_config_name on notification_subscriptions (name)
    where managed_by = 'config';

-- The outbox. `url` and `format` are copied from the deploy's notify entry or the subscription;
-- a subscription's current URL, format and secret win at send time.
create table notifications (
    id uuid primary key default gen_random_uuid(),
    deploy_id uuid not null,
    event_seq bigint not null,
    event_type text not null,
    subscription_id uuid references notification_subscriptions (id) on delete set null,
    url text not null,
    format text not null check (format in ('json', 'slack')),
    -- A deploy's notify entry: the configured secret it names; null: the default secret.
    secret_name text,
    state text not null default 'pending'
        check (state in ('pending', 'delivered', 'failed', 'cancelled')),
    -- When the next attempt is due; while an attempt is under way, when it is given up for lost.
    due_at timestamptz not null default now(),
    attempts integer not null default 0,
    -- The body as first sent: every retry sends the same message under the same webhook-id.
    payload text,
    -- Why it failed or was cancelled.
    outcome text,
    created_at timestamptz not null default now(),
    finished_at timestamptz,
    -- Checked at commit: the event and its notifications are written by one statement, in no
    -- set order (see rollcall_enqueue_notifications).
    foreign key (deploy_id, event_seq) references deploy_events (deploy_id, seq) on delete cascade
        deferrable initially deferred
);
create index notifications_due on notifications (due_at) where state = 'pending';
create index notifications_deploy on notifications (deploy_id, event_seq);
create index notifications_subscription on notifications (subscription_id) where state = 'pending';

create table notification_attempts (
    notification_id uuid not null references notifications (id) on delete cascade,
    attempt integer not null check (attempt > 0),
    at timestamptz not null,
    -- The receiver's HTTP status; null when no answer came (timeout, connection error, refused).
    status_code integer,
    latency_ms double precision not null,
    error text,
    primary key (notification_id, attempt)
);

-- The outbox rows of a batch of events, called by the statement that appends the batch
-- (store::deploy_events), so that events and their notifications commit together. An event
-- notifies each of the deploy's notify entries and each enabled subscription of its release whose
-- `events` name its type, its family (`deploy.*`) or `*`. A function rather than a step of that
-- statement: PostgreSQL plans the statement anew at each execution, and planning this insert there
-- cost ~0.5 ms per batch, for every batch; here it is planned only when a deploy has notify entries
-- or a subscription exists. Wakes the delivery workers on `channel` when it wrote any row.
create function rollcall_enqueue_notifications(
    deploy uuid, first_seq bigint, types text[], cluster text, namespace text, release text,
    notify jsonb, channel text
) returns bigint language plpgsql as $$
declare
    enqueued bigint;
begin
    if jsonb_array_length(notify) = 0
       and not exists (select 1 from notification_subscriptions where enabled) then
        return 0;
    end if;
    insert into notifications (deploy_id, event_seq, event_type, subscription_id, url, format,
                               secret_name)
    select deploy, first_seq + batch.position - 1, batch.type, target.subscription_id, target.url,
           target.format, target.secret_name
    from unnest(types) with ordinality as batch(type, position),
         lateral (
             select null::uuid as subscription_id, entry->>'url' as url,
                    coalesce(entry->>'format', 'json') as format, entry->>'secret' as secret_name
             from jsonb_array_elements(notify) as entry
             where entry->'events' ?| array[batch.type, '*', split_part(batch.type, '.', 1) || '.*']
             union all
             select s.id, s.url, s.format, null
             from notification_subscriptions s
             where s.enabled
               and s.events && array[batch.type, '*', split_part(batch.type, '.', 1) || '.*']
               and exists (
                   select 1 from unnest(s.cluster_likes, s.namespace_likes, s.release_likes)
                       as t(c, n, r)
                   where cluster like t.c and namespace like t.n and release like t.r)
         ) as target;
    get diagnostics enqueued = row_count;
    if enqueued > 0 then
        perform pg_notify(channel, '');
    end if;
    return enqueued;
end
$$;
