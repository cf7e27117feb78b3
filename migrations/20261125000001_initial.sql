-- Deploys: one row per requested deploy, its state machine and the runner's lease.
create table deploys (
    id uuid primary key,
    cluster text not null,
    namespace text not null,
    release text not null,
    chart jsonb not null,
    "values" jsonb not null default '{}',
    -- sha256 of the canonical JSON of secret_values; the values themselves are never stored
    secret_values_digest text,
    timeout_seconds bigint not null,
    rollback_on_failure boolean not null default false,
    queue_mode text not null check (queue_mode in ('fifo', 'supersede', 'reject')),
    tracking jsonb not null default '{}',
    notify jsonb not null default '[]',
    labels jsonb not null default '{}',
    requested_by text not null,
    status text not null check (status in ('queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled')),
    phase text check (phase in ('rendering', 'upgrading', 'tracking', 'rolling_back')),
    revision integer,
    rolled_back_to integer,
    verdict jsonb,
    cancel_reason text,
    cancelled_by text,
    lease_owner text,
    lease_until timestamptz,
    last_event_seq bigint not null default 0,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    cancel_requested_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz not null default now()
);

-- The database enforces one active deploy per release; queued deploys wait behind it.
create unique index deploys_active_release on deploys (cluster, namespace, release)
    where status in ('running', 'cancelling');
-- Ids are UUIDv7 (time ordered): keyset pagination walks them newest first.
create index deploys_release_id on deploys (cluster, namespace, release, id desc);
create index deploys_queued on deploys (created_at) where status = 'queued';
create index deploys_labels on deploys using gin (labels jsonb_path_ops);

-- Events: seq is gapless per deploy, assigned from deploys.last_event_seq under its row lock.
create table deploy_events (
    deploy_id uuid not null references deploys (id) on delete cascade,
    seq bigint not null check (seq > 0),
    type text not null,
    at timestamptz not null,
    level text not null check (level in ('info', 'warning', 'error')),
    resource jsonb,
    message text not null default '',
    data jsonb not null default '{}',
    primary key (deploy_id, seq)
);

-- Per-resource state of a deploy, written by the runner as tracking progresses.
create table deploy_resources (
    deploy_id uuid not null references deploys (id) on delete cascade,
    kind text not null,
    namespace text not null,
    name text not null,
    state text not null,
    ready text not null default '',
    failures text not null default '',
    message text not null default '',
    updated_at timestamptz not null default now(),
    primary key (deploy_id, kind, namespace, name)
);

create table api_tokens (
    id uuid primary key,
    name text not null,
    secret_sha256 bytea not null,
    scopes text[] not null,
    targets text[] not null,
    created_by text not null,
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);

-- Idempotency keys are unique per token; the request hash detects a reused key with another body.
create table idempotency_keys (
    token_id text not null,
    key text not null,
    request_sha256 text not null,
    deploy_id uuid not null references deploys (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (token_id, key)
);
