-- The event writer names each batch: a batch tried again after a lost reply (the statement
-- committed, the connection died before its answer) is recognised here instead of being appended
-- a second time with new seqs. Only the latest batch matters: a writer retries one batch at a time.
alter table deploys
    add column last_event_batch uuid,
    add column last_event_batch_seq bigint;
