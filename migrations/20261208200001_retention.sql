-- Retention (store::retention): what has been pruned of a finished deploy's history, as bits:
-- 1 its log events (container.log, helm.output), 2 its notifications with their attempts, 4 every
-- event but its terminal one and its reports. The deploy itself (with its verdict) and its
-- resources' final states are never pruned.
alter table deploys add column pruned smallint not null default 0;
-- Finished deploys with something left to prune, oldest first.
create index deploys_prunable on deploys (finished_at) where finished_at is not null and pruned <> 7;
