-- The firehose (`GET /v1/events`) resumes from a cursor, so its order must never let a cursor move
-- past an event that commits later. An identity or bigserial id is assigned at insert, not at
-- commit: a transaction that inserted id 5 and commits after the one that inserted id 6 would be
-- skipped by a reader already past 6. Events are ordered instead by `(order_xid, deploy_id, seq)`
-- and delivered only below the visibility fence `pg_snapshot_xmin(pg_current_snapshot())`, the
-- oldest transaction still in flight: every transaction with a smaller id has ended, so nothing can
-- appear behind a position once it is below the fence.
--
-- `order_xid` is the writing transaction's id (`pg_current_xact_id()`), raised to the deploy's
-- previous `events_order_xid` when that is greater: a deploy's rows are appended under its row lock,
-- and a transaction that took its id early but the lock late still sorts after the events it
-- follows, so a deploy's events keep their `seq` order in the firehose. The fence stays sound: an
-- event's `order_xid` is never below its own transaction's id.
--
-- Events written before this migration sort first (0); no cursor was ever handed out for them.
-- Later rows default to their transaction's id, so that a writer other than the one statement
-- that appends events (store::deploy_events) still lands in the firehose.
alter table deploys add column events_order_xid bigint not null default 0;
alter table deploy_events add column order_xid bigint not null default 0;
alter table deploy_events alter column order_xid set default pg_current_xact_id()::text::bigint;
