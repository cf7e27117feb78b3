-- Outgoing notifications (DESIGN §6.3): global subscriptions, the outbox (one row per event and
-- destination, written in the statement that writes the event) and every delivery attempt.

-- Whether an event type matches a subscription's patterns: the type itself, its family
-- (`deploy.*`) or `*`. The API accepts only patterns of known types (domain::notify).
create function rollcall_event_matches(patterns text[], event_type text) returns boolean
    language sql immutable parallel safe
    return exists (
        select 1 from unnest(patterns) as pattern
        where pattern = '*' or pattern = event_type
           or (right(pattern, 2) = '.*' and starts_with(event_type, left(pattern, -1)))
    );

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
    foreign key (deploy_id, event_seq) references deploy_events (deploy_id, seq) on delete cascade
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
