-- A notification whose attempt is under way ends by its receiver's answer. Disabling or deleting its
-- subscription cancels only the pending notifications not on the wire: an in-flight one cancelled
-- meanwhile would read `cancelled` until its answer overwrote it, or stay so although it was sent.
-- Set by the claim, cleared when the attempt is recorded; a claim that ran out (its process died)
-- no longer holds the notification.
alter table notifications add column claimed_until timestamptz;
