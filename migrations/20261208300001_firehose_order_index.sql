-- no-transaction
-- The firehose reads `deploy_events` in `(order_xid, deploy_id, seq)` order from a cursor. Built
-- concurrently: writers of events are not blocked while a large table is indexed.
create index concurrently if not exists deploy_events_firehose_order
    on deploy_events (order_xid, deploy_id, seq);
