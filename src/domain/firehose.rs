//! The firehose's cursor: a position in one order of every deploy's events, in which nothing can
//! appear behind a position once it has been handed out (the order and its fence are explained in
//! the migration `20261208300000_firehose_order.sql`).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A position in the firehose: an event's `(order_xid, deploy_id, seq)`, or the start of
/// everything ordered at `order_xid` or later (the form `<order_xid>`, handed out when a stream
/// opens, before it has delivered any event). Clients treat it as opaque: they send back the last
/// SSE `id:` they saw as `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FirehosePosition {
    pub order_xid: i64,
    pub deploy_id: Uuid,
    pub seq: i64,
}

impl FirehosePosition {
    /// Before every event ordered at `order_xid` or later, after every event ordered earlier.
    pub fn before(order_xid: i64) -> Self {
        Self {
            order_xid,
            deploy_id: Uuid::nil(),
            seq: 0,
        }
    }
}

impl fmt::Display for FirehosePosition {
    /// `<order_xid>:<deploy_id>:<seq>` for an event, `<order_xid>` for [`FirehosePosition::before`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seq == 0 {
            write!(f, "{}", self.order_xid)
        } else {
            write!(f, "{}:{}:{}", self.order_xid, self.deploy_id, self.seq)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an SSE id of this stream: <order_xid> or <order_xid>:<deploy id>:<seq>")]
pub struct InvalidPosition;

impl FromStr for FirehosePosition {
    type Err = InvalidPosition;

    fn from_str(text: &str) -> Result<Self, InvalidPosition> {
        let mut parts = text.trim().split(':');
        let order_xid = parts
            .next()
            .and_then(|xid| xid.parse::<i64>().ok())
            .filter(|xid| *xid >= 0)
            .ok_or(InvalidPosition)?;
        let Some(deploy_id) = parts.next() else {
            return Ok(Self::before(order_xid));
        };
        let position = Self {
            order_xid,
            deploy_id: deploy_id.parse().map_err(|_| InvalidPosition)?,
            seq: parts
                .next()
                .and_then(|seq| seq.parse::<i64>().ok())
                .filter(|seq| *seq > 0)
                .ok_or(InvalidPosition)?,
        };
        match parts.next() {
            None => Ok(position),
            Some(_) => Err(InvalidPosition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_their_text() {
        let event = FirehosePosition {
            order_xid: 7345,
            deploy_id: Uuid::new_v4(),
            seq: 12,
        };
        assert_eq!(event.to_string().parse(), Ok(event));
        assert_eq!(
            FirehosePosition::before(88).to_string().parse(),
            Ok(FirehosePosition::before(88))
        );
        assert_eq!("88".parse(), Ok(FirehosePosition::before(88)));
    }

    #[test]
    fn a_start_sorts_between_the_transactions_around_it() {
        let deploy_id = Uuid::new_v4();
        let at = |order_xid, seq| FirehosePosition {
            order_xid,
            deploy_id,
            seq,
        };
        assert!(at(9, 500) < FirehosePosition::before(10));
        assert!(FirehosePosition::before(10) < at(10, 1));
    }

    #[test]
    fn malformed_positions_are_refused() {
        for text in [
            "",
            "-1",
            "x",
            "5:not-a-uuid:3",
            &format!("5:{}:0", Uuid::new_v4()),
            &format!("5:{}", Uuid::new_v4()),
            &format!("5:{}:3:4", Uuid::new_v4()),
        ] {
            assert_eq!(
                text.parse::<FirehosePosition>(),
                Err(InvalidPosition),
                "{text:?}"
            );
        }
    }
}
