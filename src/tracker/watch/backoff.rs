//! Retry delays of a watch after an API error.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Exponential back-off, doubling from `initial` up to `max`, reset by any success (kube-runtime's
/// `StreamBackoff` resets on every `Ok`). Shorter than kube's default (800 ms start, 120 s reset
/// timer) because a deploy waits on these watches: a burst of 5xx must not hide a verdict for long.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl WatchBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        WatchBackoff {
            initial,
            max,
            next: initial,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_restarts_after_a_success() {
        let mut backoff = WatchBackoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = backoff.by_ref().take(4).map(|d| d.as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(Duration::from_millis(100)));
    }
}
