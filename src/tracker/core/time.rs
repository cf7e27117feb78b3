//! Kubernetes timestamps (jiff, inside k8s-openapi) as chrono instants, converted in one place.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

pub(crate) fn from_timestamp(timestamp: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(
        timestamp.as_second(),
        u32::try_from(timestamp.subsec_nanosecond()).unwrap_or(0),
    )
    .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn from_time(time: &Time) -> DateTime<Utc> {
    from_timestamp(time.0)
}

pub(crate) fn from_micro_time(time: &MicroTime) -> DateTime<Utc> {
    from_timestamp(time.0)
}

/// `now - since`, zero when `since` lies in the future.
pub(crate) fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> std::time::Duration {
    (now - since).to_std().unwrap_or_default()
}

/// The inverse of [`from_time`], for building objects in tests.
#[cfg(test)]
pub(crate) fn to_time(instant: DateTime<Utc>) -> Time {
    Time(
        Timestamp::new(
            instant.timestamp(),
            i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
        )
        .expect("timestamp in range"),
    )
}
