//! Durations as clients and charts write them, the Go way (werf's annotations are Go durations):
//! `500ms`, `90s`, `4m`, `1h30m`, or a bare `0`. One parser and one formatter for the request's
//! `timeout`, the tracking policy and the `--lease` flag.

use std::fmt;
use std::time::Duration;

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("expected a number like 30s, 4m or 1h30m")]
    MissingNumber,
    #[error("missing unit (ms, s, m or h)")]
    MissingUnit,
    #[error("unknown unit {0:?} (ms, s, m or h)")]
    UnknownUnit(String),
    #[error("number too large")]
    TooLarge,
    #[error("must be between {} and {}", format_duration(*.min), format_duration(*.max))]
    OutOfRange { min: Duration, max: Duration },
}

/// Parses a sequence of `<integer><unit>` parts, units `ms`, `s`, `m`, `h`, or `0` (as Go's
/// `time.ParseDuration` does). Surrounding whitespace is an error; callers that allow it trim.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::MissingNumber);
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge)?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "" => return Err(DurationError::MissingUnit),
            other => return Err(DurationError::UnknownUnit(other.to_owned())),
        };
        let part = match seconds_per_unit {
            None => Some(Duration::from_millis(amount)),
            Some(size) => amount.checked_mul(size).map(Duration::from_secs),
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or(DurationError::TooLarge)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The shortest exact form that [`parse_duration`] reads back: `500ms`, `1h30m`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut seconds = duration.as_secs();
    let mut text = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if seconds >= size {
            text.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if seconds > 0 || text.is_empty() {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// A duration within bounds, printed back in the shortest exact form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedDuration(Duration);

impl BoundedDuration {
    pub fn parse(text: &str, min: Duration, max: Duration) -> Result<Self, DurationError> {
        Self::new(parse_duration(text)?, min, max)
    }

    pub fn new(duration: Duration, min: Duration, max: Duration) -> Result<Self, DurationError> {
        if duration < min || duration > max {
            return Err(DurationError::OutOfRange { min, max });
        }
        Ok(Self(duration))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for BoundedDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5s",
            "1.5s",
            "5m ",
            " 5m",
            "4 minutes",
            "00",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("m"), Err(DurationError::MissingNumber));
        assert_eq!(parse_duration("4"), Err(DurationError::MissingUnit));
        assert_eq!(
            parse_duration("4 minutes").unwrap_err().to_string(),
            "unknown unit \" minutes\" (ms, s, m or h)"
        );
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            parse_duration("9999999999999999h"),
            Err(DurationError::TooLarge)
        );
    }

    #[test]
    fn formats_the_shortest_exact_form() {
        for (millis, text) in [
            (0, "0s"),
            (500, "500ms"),
            (1_500, "1500ms"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (5_400_000, "1h30m"),
            (3_661_000, "1h1m1s"),
        ] {
            let duration = Duration::from_millis(millis);
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn bounds_are_enforced_and_display_is_canonical() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(3600);
        assert_eq!(
            BoundedDuration::parse("90s", min, max).unwrap().to_string(),
            "1m30s"
        );
        assert_eq!(
            BoundedDuration::parse("2h", min, max)
                .unwrap_err()
                .to_string(),
            "must be between 1s and 1h"
        );
        assert!(BoundedDuration::parse("10ms", min, max).is_err());
        assert!(BoundedDuration::parse("0", min, max).is_err());
    }
}
