//! What an attempt's outcome means for the notification: delivered, retried later (exponential
//! back-off with jitter, or the receiver's `Retry-After`), or given up.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::destination::Delivery;

/// When failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// How long after the event a notification is still attempted.
    pub horizon: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            horizon: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after `failures` failed attempts (≥ 1): 5 s, 10 s, 20 s, … by default, each
    /// spread by ±20 % (`jitter` in [0, 1)) so that receivers recovering from an outage are not hit
    /// by every retry at once; never above `max_delay`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let nominal = self.first_delay.saturating_mul(1 << doublings);
        nominal.mul_f64(0.8 + 0.4 * jitter).min(self.max_delay)
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Delivered,
    /// Try again after the back-off, or after this long when the receiver said so.
    Retry {
        after: Option<Duration>,
    },
    /// Give up. `gone`: the receiver answered 410, its subscription is disabled.
    Final {
        reason: String,
        gone: bool,
    },
}

/// 2xx delivers. 5xx, 408, 409, 425, 429, timeouts and connection errors are retried (429 and 503
/// after their `Retry-After`); other answers are final: a 4xx, and a 3xx since redirects are not
/// followed.
pub fn decide(delivery: &Delivery, now: DateTime<Utc>) -> Decision {
    match delivery {
        Delivery::Answered {
            status,
            retry_after,
            ..
        } => match status {
            200..=299 => Decision::Delivered,
            429 | 503 => Decision::Retry {
                after: retry_after
                    .as_deref()
                    .and_then(|value| parse_retry_after(value, now)),
            },
            408 | 409 | 425 | 500..=599 => Decision::Retry { after: None },
            410 => Decision::Final {
                reason: "the receiver answered 410 Gone".into(),
                gone: true,
            },
            300..=399 => Decision::Final {
                reason: format!("the receiver answered {status}: redirects are not followed"),
                gone: false,
            },
            _ => Decision::Final {
                reason: format!("the receiver answered {status}"),
                gone: false,
            },
        },
        Delivery::NoAnswer { .. } => Decision::Retry { after: None },
        Delivery::Refused { reason } => Decision::Final {
            reason: format!("destination refused: {reason}"),
            gone: false,
        },
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_five_seconds_up_to_an_hour_with_jitter() {
        let policy = RetryPolicy::default();
        let middle: Vec<u64> = (1..=4).map(|n| policy.delay(n, 0.5).as_secs()).collect();
        assert_eq!(middle, [5, 10, 20, 40]);
        assert_eq!(policy.delay(1, 0.0), Duration::from_secs(4));
        assert_eq!(policy.delay(1, 0.999_999).as_secs(), 5);
        assert!(policy.delay(1, 0.999_999) > Duration::from_millis(5990));
        assert_eq!(policy.delay(11, 0.5), Duration::from_secs(3600));
        assert_eq!(policy.delay(1000, 0.99), Duration::from_secs(3600));
    }

    fn answered(status: u16, retry_after: Option<&str>) -> Delivery {
        Delivery::Answered {
            status,
            retry_after: retry_after.map(str::to_owned),
            latency: Duration::from_millis(3),
        }
    }

    #[test]
    fn answers_decide_between_retry_and_giving_up() {
        let now = Utc::now();
        assert_eq!(decide(&answered(204, None), now), Decision::Delivered);
        for status in [500, 502, 503, 408, 409, 425, 429] {
            assert_eq!(
                decide(&answered(status, None), now),
                Decision::Retry { after: None },
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 413, 422, 301, 302] {
            assert!(
                matches!(
                    decide(&answered(status, None), now),
                    Decision::Final { gone: false, .. }
                ),
                "{status}"
            );
        }
        assert!(matches!(
            decide(&answered(410, None), now),
            Decision::Final { gone: true, .. }
        ));
        assert_eq!(
            decide(&answered(429, Some("7")), now),
            Decision::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        let no_answer = Delivery::NoAnswer {
            error: "timed out".into(),
            latency: Duration::from_secs(10),
        };
        assert_eq!(decide(&no_answer, now), Decision::Retry { after: None });
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 07 Dec 2026 20:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Mon, 07 Dec 2026 19:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
