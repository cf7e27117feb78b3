//! The behaviour vocabulary a chart uses to tell the simulated kubelet how a container acts:
//! pod-template annotation `sim.rollcall.dev/behavior` (every container) or
//! `sim.rollcall.dev/behavior-<container>` (one container, overriding the shared keys), holding
//! `key=value` pairs separated by `;`. Durations are simulated time (`500ms`, `2s`, `1m`, `1m30s`).

use std::collections::BTreeMap;
use std::time::Duration;

/// Annotation that applies to every container of the pod.
pub const BEHAVIOR_ANNOTATION: &str = "sim.rollcall.dev/behavior";

/// Time from container start to readiness when the chart says nothing (simulated).
pub const DEFAULT_READY_AFTER: Duration = Duration::from_secs(1);
/// Time a container takes to stop after SIGTERM when the chart says nothing (simulated).
pub const DEFAULT_TERMINATION_DELAY: Duration = Duration::from_millis(200);
/// How long a start listed in `failFirstStarts` runs before it fails (simulated).
pub const FAILED_START_RUNTIME: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImagePull {
    /// The image is pulled successfully.
    #[default]
    Succeed,
    /// Every pull fails: `ErrImagePull`, then `ImagePullBackOff` with back-off.
    Fail,
    /// The image is absent and the pull policy forbids pulling: `ErrImageNeverPull`.
    Never,
}

/// In a `log` line, replaced by the writing instance's restart count, so that tests can tell a
/// crash-looping container's runs apart (`log=starting run {restartCount}`).
pub const RESTART_COUNT_PLACEHOLDER: &str = "{restartCount}";

/// In a `log` line, replaced by a NUL byte: containers write any bytes, while a request naming the
/// behavior cannot carry one (rollcall refuses NUL in requests), e.g. `log=binary{nul}junk`.
pub const NUL_PLACEHOLDER: &str = "{nul}";

/// How one container behaves; absent keys keep the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Behavior {
    /// Time spent in `ContainerCreating` before the container starts.
    pub start_delay: Duration,
    /// Time from start to readiness (default [`DEFAULT_READY_AFTER`]).
    pub ready_after: Option<Duration>,
    pub never_ready: bool,
    /// The container exits with `exit_code` (default 1) this long after each start.
    pub crash_after: Option<Duration>,
    pub exit_code: Option<i32>,
    /// The container exits with `exit_code` (default 0) this long after start: a finished Job task.
    pub exit_after: Option<Duration>,
    pub image_pull: ImagePull,
    /// The first k starts of the container fail (exit code 1, or `exit_code` when non-zero).
    pub fail_first_starts: u32,
    /// Time the container takes to stop once asked to (default [`DEFAULT_TERMINATION_DELAY`]).
    pub termination_delay: Option<Duration>,
    pub not_ready_while_terminating: bool,
    pub fail_readiness_while_terminating: bool,
    /// A line written to the container log at each start (and every `log_every`);
    /// [`RESTART_COUNT_PLACEHOLDER`] in it names the container instance.
    pub log: Option<String>,
    pub log_every: Option<Duration>,
    /// From this long after each start the container's livenessProbe fails, until the kubelet kills
    /// it (needs a `livenessProbe` on the container).
    pub fail_liveness_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BehaviorError {
    #[error("annotation {annotation}: {entry:?} is not key=value")]
    NotKeyValue { annotation: String, entry: String },
    #[error("annotation {annotation}: unknown key {key:?}")]
    UnknownKey { annotation: String, key: String },
    #[error("annotation {annotation}: invalid value {value:?} for {key}: {expected}")]
    InvalidValue {
        annotation: String,
        key: String,
        value: String,
        expected: &'static str,
    },
}

impl Behavior {
    /// The behaviour of `container` given the pod's annotations: shared keys first, then the
    /// container's own annotation on top.
    pub fn for_container(
        annotations: &BTreeMap<String, String>,
        container: &str,
    ) -> Result<Behavior, BehaviorError> {
        let mut behavior = Behavior::default();
        if let Some(shared) = annotations.get(BEHAVIOR_ANNOTATION) {
            behavior.apply(BEHAVIOR_ANNOTATION, shared)?;
        }
        let own = format!("{BEHAVIOR_ANNOTATION}-{container}");
        if let Some(text) = annotations.get(&own) {
            behavior.apply(&own, text)?;
        }
        Ok(behavior)
    }

    /// Parses one annotation value on its own.
    pub fn parse(text: &str) -> Result<Behavior, BehaviorError> {
        let mut behavior = Behavior::default();
        behavior.apply(BEHAVIOR_ANNOTATION, text)?;
        Ok(behavior)
    }

    fn apply(&mut self, annotation: &str, text: &str) -> Result<(), BehaviorError> {
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (key, value) = entry
                .split_once('=')
                .ok_or_else(|| BehaviorError::NotKeyValue {
                    annotation: annotation.to_owned(),
                    entry: entry.to_owned(),
                })?;
            let (key, value) = (key.trim(), value.trim());
            let invalid = |expected: &'static str| BehaviorError::InvalidValue {
                annotation: annotation.to_owned(),
                key: key.to_owned(),
                value: value.to_owned(),
                expected,
            };
            let duration = || {
                parse_duration(value).ok_or_else(|| invalid("a duration such as 500ms, 2s or 1m"))
            };
            let flag = || parse_flag(value).ok_or_else(|| invalid("true or false"));
            match key {
                "startDelay" => self.start_delay = duration()?,
                "readyAfter" => self.ready_after = Some(duration()?),
                "neverReady" => self.never_ready = flag()?,
                "crashAfter" => self.crash_after = Some(duration()?),
                "exitCode" => {
                    self.exit_code =
                        Some(value.parse().map_err(|_| invalid("an integer exit code"))?)
                }
                "exitAfter" => self.exit_after = Some(duration()?),
                "imagePull" => {
                    self.image_pull = match value {
                        "fail" => ImagePull::Fail,
                        "never" => ImagePull::Never,
                        "ok" => ImagePull::Succeed,
                        _ => return Err(invalid("fail, never or ok")),
                    }
                }
                "failFirstStarts" => {
                    self.fail_first_starts = value
                        .parse()
                        .map_err(|_| invalid("a non-negative integer"))?
                }
                "terminationDelay" => self.termination_delay = Some(duration()?),
                "notReadyWhileTerminating" => self.not_ready_while_terminating = flag()?,
                "failReadinessWhileTerminating" => self.fail_readiness_while_terminating = flag()?,
                "log" => self.log = Some(value.to_owned()),
                "logEvery" => self.log_every = Some(duration()?).filter(|every| !every.is_zero()),
                "failLivenessAfter" => self.fail_liveness_after = Some(duration()?),
                _ => {
                    return Err(BehaviorError::UnknownKey {
                        annotation: annotation.to_owned(),
                        key: key.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn ready_after(&self) -> Duration {
        self.ready_after.unwrap_or(DEFAULT_READY_AFTER)
    }

    pub fn termination_delay(&self) -> Duration {
        self.termination_delay.unwrap_or(DEFAULT_TERMINATION_DELAY)
    }

    /// When and how start number `start` (1-based) of the container ends by itself, if it does.
    pub fn exit_of_start(&self, start: u32) -> Option<(Duration, i32)> {
        if start <= self.fail_first_starts {
            let code = self.exit_code.filter(|code| *code != 0).unwrap_or(1);
            return Some((self.crash_after.unwrap_or(FAILED_START_RUNTIME), code));
        }
        if let Some(after) = self.crash_after {
            return Some((after, self.exit_code.filter(|code| *code != 0).unwrap_or(1)));
        }
        self.exit_after
            .map(|after| (after, self.exit_code.unwrap_or(0)))
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `1h`, or sums of them such as `1m30s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|end| *end > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += Duration::try_from_secs_f64(number * seconds_per_unit).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn durations_accept_units_fractions_and_sums() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "5", "s", "2x", "-1s", "1..2s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_key_is_parsed() {
        let behavior = Behavior::parse(
            "startDelay=2s; readyAfter=3s;neverReady=true;crashAfter=4s;exitCode=3;exitAfter=5s;imagePull=fail;\
             failFirstStarts=2;terminationDelay=6s;notReadyWhileTerminating=true;failReadinessWhileTerminating=true;\
             log=hello = world;logEvery=500ms;failLivenessAfter=7s",
        )
        .unwrap();
        assert_eq!(
            behavior,
            Behavior {
                start_delay: Duration::from_secs(2),
                ready_after: Some(Duration::from_secs(3)),
                never_ready: true,
                crash_after: Some(Duration::from_secs(4)),
                exit_code: Some(3),
                exit_after: Some(Duration::from_secs(5)),
                image_pull: ImagePull::Fail,
                fail_first_starts: 2,
                termination_delay: Some(Duration::from_secs(6)),
                not_ready_while_terminating: true,
                fail_readiness_while_terminating: true,
                log: Some("hello = world".to_owned()),
                log_every: Some(Duration::from_millis(500)),
                fail_liveness_after: Some(Duration::from_secs(7)),
            }
        );
        assert_eq!(
            Behavior::parse("imagePull=never").unwrap().image_pull,
            ImagePull::Never
        );
    }

    #[test]
    fn container_annotation_overrides_shared_keys() {
        let annotations = annotations(&[
            ("sim.rollcall.dev/behavior", "readyAfter=5s;log=shared"),
            ("sim.rollcall.dev/behavior-web", "readyAfter=1s"),
        ]);
        let web = Behavior::for_container(&annotations, "web").unwrap();
        assert_eq!(web.ready_after(), Duration::from_secs(1));
        assert_eq!(web.log.as_deref(), Some("shared"));
        let sidecar = Behavior::for_container(&annotations, "sidecar").unwrap();
        assert_eq!(sidecar.ready_after(), Duration::from_secs(5));
        assert_eq!(
            Behavior::for_container(&BTreeMap::new(), "web").unwrap(),
            Behavior::default()
        );
    }

    #[test]
    fn invalid_entries_name_the_problem() {
        let error = Behavior::parse("readyAfter=soon").unwrap_err();
        assert_eq!(
            error.to_string(),
            "annotation sim.rollcall.dev/behavior: invalid value \"soon\" for readyAfter: a duration such as 500ms, 2s or 1m"
        );
        assert!(
            matches!(Behavior::parse("bogus=1"), Err(BehaviorError::UnknownKey { key, .. }) if key == "bogus")
        );
        assert!(matches!(
            Behavior::parse("neverReady"),
            Err(BehaviorError::NotKeyValue { .. })
        ));
        assert!(matches!(
            Behavior::parse("neverReady=yes"),
            Err(BehaviorError::InvalidValue { .. })
        ));
        assert!(matches!(
            Behavior::parse("imagePull=sometimes"),
            Err(BehaviorError::InvalidValue { .. })
        ));
    }

    #[test]
    fn exits_follow_fail_first_starts_then_crash_or_exit() {
        let flaky = Behavior::parse("failFirstStarts=2").unwrap();
        assert_eq!(flaky.exit_of_start(1), Some((FAILED_START_RUNTIME, 1)));
        assert_eq!(flaky.exit_of_start(2), Some((FAILED_START_RUNTIME, 1)));
        assert_eq!(flaky.exit_of_start(3), None);
        let crasher = Behavior::parse("crashAfter=2s;exitCode=7").unwrap();
        assert_eq!(crasher.exit_of_start(9), Some((Duration::from_secs(2), 7)));
        let task = Behavior::parse("exitAfter=1s").unwrap();
        assert_eq!(task.exit_of_start(1), Some((Duration::from_secs(1), 0)));
        let failing_task = Behavior::parse("exitAfter=1s;exitCode=2").unwrap();
        assert_eq!(
            failing_task.exit_of_start(1),
            Some((Duration::from_secs(1), 2))
        );
    }
}
