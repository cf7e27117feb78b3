-- `create_namespace` of the deploy request: helm upgrade --create-namespace.
alter table deploys add column create_namespace boolean not null default false;
-- The revision a rollback in progress returns to, so that a process taking the deploy over
-- finishes that rollback rather than guessing the target again.
alter table deploys add column rollback_target integer;
