-- Inbound webhooks created through the admin API (those of the configuration file are not stored).
-- The definition is the hook as written, without its secret; the secret is sealed with the server
-- key (ROLLCALL_SECRET_KEY), bound to `hook:<name>`.
create table webhooks (
    name text primary key,
    definition jsonb not null,
    sealed_secret text not null,
    created_by text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Deliveries that passed verification (unauthenticated requests are never recorded). The unique
-- (hook, delivery id) makes a redelivery find the first one on any replica and after restarts; a
-- delivery that deployed keeps its deploy, others are evaluated again when redelivered. The deploy
-- reference is checked at commit: a delivery is claimed before its deploy is written, in one
-- transaction.
create table webhook_deliveries (
    id uuid primary key,
    hook text not null,
    delivery_id text not null,
    event text not null,
    git_ref text,
    commit_sha text,
    outcome text not null check (outcome in ('ping', 'ignored', 'deployed', 'rejected')),
    detail text not null default '',
    deploy_id uuid references deploys (id) on delete set null deferrable initially deferred,
    attempts integer not null default 1,
    received_at timestamptz not null default now(),
    last_received_at timestamptz not null default now(),
    constraint webhook_deliveries_hook_delivery unique (hook, delivery_id)
);
-- Ids are UUIDv7: a hook's recent deliveries, newest first.
create index webhook_deliveries_recent on webhook_deliveries (hook, id desc);
