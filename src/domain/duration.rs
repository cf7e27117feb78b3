//! Human durations as clients write them: `90s`, `5m`, `1h30m`, `500ms`.

use std::fmt;
use std::time::Duration;

/// Parses a sequence of `<integer><unit>` parts, units `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const HINT: &str =
        "must be a duration such as \"90s\", \"5m\" or \"1h30m\" (units ms, s, m, h)";
    if text.is_empty() {
        return Err(HINT.into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(HINT.into());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| HINT.to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount * 60),
            "h" => Duration::from_secs(amount * 3600),
            _ => return Err(HINT.into()),
        };
        rest = &rest[unit_len..];
        total = total.checked_add(part).ok_or_else(|| HINT.to_owned())?;
    }
    Ok(total)
}

/// A duration within bounds, printed back in the shortest exact form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedDuration(Duration);

impl BoundedDuration {
    pub fn parse(text: &str, min: Duration, max: Duration) -> Result<Self, String> {
        let duration = parse_duration(text)?;
        if duration < min || duration > max {
            return Err(format!(
                "must be between {} and {}",
                format_duration(min),
                format_duration(max)
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "5", "m", "5x", "-5s", "1.5s", "5m "] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
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
        assert!(BoundedDuration::parse("2h", min, max).is_err());
        assert!(BoundedDuration::parse("10ms", min, max).is_err());
    }
}
