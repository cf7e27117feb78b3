//! Notification settings: the `[notify]` table of the configuration file and the two flags
//! (`--notify-secret`, `--notify-allow-networks`), checked into a [`NotifyConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::retry::RetryPolicy;
use crate::domain::duration::BoundedDuration;
use crate::domain::notify::{
    ConfiguredSubscription, DestinationPolicy, NotifyFormat, NotifyRules, Subscription,
    WebhookSecret, check_secret_name,
};

/// Everything configured about notifications.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// `ROLLCALL_NOTIFY_SECRET`: signs what names no secret of its own.
    pub default_secret: Option<WebhookSecret>,
    /// `[notify.secrets]`: secrets that notify entries and subscriptions name.
    pub secrets: BTreeMap<String, WebhookSecret>,
    pub destinations: DestinationPolicy,
    /// `[[notify.subscriptions]]`.
    pub subscriptions: Vec<ConfiguredSubscription>,
    pub delivery: DeliveryOptions,
}

/// How notifications are sent.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How long one attempt may take (connect, send, answer).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Attempts under way at once in this process.
    pub max_in_flight: usize,
    /// The outbox is read at least this often, even if no wake-up came (a safety net: writers
    /// wake the workers with NOTIFY).
    pub poll_interval: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_in_flight: 32,
            poll_interval: Duration::from_secs(5),
        }
    }
}

impl DeliveryOptions {
    /// How long a claimed notification stays claimed: past it, a process that died mid-attempt
    /// has its notification retried by another. Well past the attempt's own time limit.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// The `[notify]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// Non-public networks notifications may reach (CIDRs); `--notify-allow-networks` wins.
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Named signing secrets (`name = "whsec_…"`).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSection>,
    /// One attempt's time limit (default `10s`).
    pub timeout: Option<String>,
    /// The delay before the first retry (default `5s`), doubled for each further one.
    pub retry_delay: Option<String>,
    /// The longest delay between attempts (default `1h`).
    pub max_retry_delay: Option<String>,
    /// How long after its event a notification is still attempted (default `24h`).
    pub retry_horizon: Option<String>,
}

/// A `[[notify.subscriptions]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSection {
    pub name: String,
    pub url: String,
    /// Default: the terminal deploy events.
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub format: NotifyFormat,
    /// `cluster/namespace/release` globs; default `*/*/*`.
    pub targets: Option<Vec<String>>,
    /// A secret of `[notify.secrets]`; default: the default notification secret.
    pub secret: Option<String>,
}

/// Comma-separated CIDRs, as `--notify-allow-networks` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkList(pub Vec<IpNet>);

impl std::str::FromStr for NetworkList {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        DestinationPolicy::parse_networks(text).map(NetworkList)
    }
}

impl NotifyConfig {
    /// Checks the file's `[notify]` table with the flags; errors name the key and entry, never a
    /// secret's value.
    pub fn from_settings(
        section: NotifySection,
        default_secret: Option<&str>,
        allow_networks: Option<NetworkList>,
    ) -> Result<Self, String> {
        let default_secret = default_secret
            .map(|text| WebhookSecret::parse(text.trim()))
            .transpose()
            .map_err(|message| format!("ROLLCALL_NOTIFY_SECRET {message}"))?;
        let mut secrets = BTreeMap::new();
        for (name, value) in section.secrets {
            check_secret_name(&name)
                .map_err(|message| format!("notify.secrets: {name:?} {message}"))?;
            let secret = WebhookSecret::parse(value.trim())
                .map_err(|message| format!("notify.secrets.{name} {message}"))?;
            secrets.insert(name, secret);
        }
        let networks = match allow_networks {
            Some(NetworkList(networks)) => networks,
            None => DestinationPolicy::parse_networks(&section.allow_networks.join(","))
                .map_err(|message| format!("notify.allow_networks: {message}"))?,
        };
        let destinations = DestinationPolicy::new(networks);
        let mut subscriptions: Vec<ConfiguredSubscription> = Vec::new();
        for (index, entry) in section.subscriptions.into_iter().enumerate() {
            let at = format!("notify.subscriptions[{index}] ({})", entry.name);
            if subscriptions
                .iter()
                .any(|known| known.subscription.name == entry.name)
            {
                return Err(format!("{at}: the name is used twice"));
            }
            let subscription = Subscription::parse(
                entry.name,
                &entry.url,
                entry.events,
                entry.format,
                entry.targets,
                &destinations,
            )
            .map_err(|errors| {
                let described: Vec<String> = errors
                    .iter()
                    .map(|error| format!("{}: {}", error.field, error.message))
                    .collect();
                format!("{at}: {}", described.join("; "))
            })?;
            match &entry.secret {
                Some(name) if !secrets.contains_key(name) => {
                    return Err(format!(
                        "{at}: secret: no secret named {name:?} in [notify.secrets]"
                    ));
                }
                None if default_secret.is_none() => {
                    return Err(format!(
                        "{at}: secret: name one of [notify.secrets], or set ROLLCALL_NOTIFY_SECRET"
                    ));
                }
                _ => {}
            }
            subscriptions.push(ConfiguredSubscription {
                subscription,
                secret_name: entry.secret,
            });
        }
        let defaults = DeliveryOptions::default();
        let duration = |key: &str, text: Option<String>, default: Duration, min, max| match text {
            Some(text) => BoundedDuration::parse(&text, min, max)
                .map(BoundedDuration::get)
                .map_err(|error| format!("notify.{key}: {error}")),
            None => Ok(default),
        };
        let retry = RetryPolicy {
            first_delay: duration(
                "retry_delay",
                section.retry_delay,
                defaults.retry.first_delay,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            )?,
            max_delay: duration(
                "max_retry_delay",
                section.max_retry_delay,
                defaults.retry.max_delay,
                Duration::from_millis(100),
                Duration::from_secs(24 * 3600),
            )?,
            horizon: duration(
                "retry_horizon",
                section.retry_horizon,
                defaults.retry.horizon,
                Duration::from_secs(1),
                Duration::from_secs(30 * 24 * 3600),
            )?,
        };
        let delivery = DeliveryOptions {
            timeout: duration(
                "timeout",
                section.timeout,
                defaults.timeout,
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?,
            retry,
            ..defaults
        };
        Ok(NotifyConfig {
            default_secret,
            secrets,
            destinations,
            subscriptions,
            delivery,
        })
    }

    /// What deploy requests may ask for.
    pub fn rules(&self) -> NotifyRules {
        NotifyRules {
            destinations: self.destinations.clone(),
            secret_names: self.secrets.keys().cloned().collect(),
            has_default_secret: self.default_secret.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn section(text: &str) -> NotifySection {
        toml::from_str(text).expect("a [notify] table")
    }

    #[test]
    fn a_section_with_secrets_subscriptions_and_timings() {
        let config = NotifyConfig::from_settings(
            section(&format!(
                r#"
                allow_networks = ["10.20.0.0/16"]
                retry_delay = "1s"
                retry_horizon = "2h"
                [secrets]
                portal = "{SECRET}"
                [[subscriptions]]
                name = "portal"
                url = "https://portal.example/hooks"
                events = ["deploy.*"]
                targets = ["*/prod/*"]
                secret = "portal"
                [[subscriptions]]
                name = "chat"
                url = "http://10.20.1.5/hooks/rollcall"
                format = "slack"
                "#
            )),
            Some(SECRET),
            None,
        )
        .unwrap();
        assert_eq!(config.subscriptions.len(), 2);
        assert_eq!(
            config.subscriptions[1].subscription.format,
            NotifyFormat::Slack
        );
        assert_eq!(config.delivery.retry.first_delay, Duration::from_secs(1));
        assert_eq!(config.delivery.retry.horizon, Duration::from_secs(7200));
        assert_eq!(config.delivery.retry.max_delay, Duration::from_secs(3600));
        assert!(config.rules().secret_names.contains("portal"));
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let bad_secret = NotifyConfig::from_settings(
            section("[secrets]\nportal = \"not-a-whsec-secret\""),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            bad_secret.starts_with("notify.secrets.portal"),
            "{bad_secret}"
        );
        assert!(!bad_secret.contains("not-a-whsec"), "{bad_secret}");
        let private = NotifyConfig::from_settings(
            section("[[subscriptions]]\nname = \"x\"\nurl = \"http://10.0.0.1/\""),
            Some(SECRET),
            None,
        )
        .unwrap_err();
        assert!(
            private.contains("notify.subscriptions[0] (x): url:"),
            "{private}"
        );
        let unsigned = NotifyConfig::from_settings(
            section("[[subscriptions]]\nname = \"x\"\nurl = \"https://x.example/\""),
            None,
            None,
        )
        .unwrap_err();
        assert!(unsigned.contains("ROLLCALL_NOTIFY_SECRET"), "{unsigned}");
        let allowed_by_flag = NotifyConfig::from_settings(
            section("[[subscriptions]]\nname = \"x\"\nurl = \"http://10.0.0.1/\""),
            Some(SECRET),
            Some("10.0.0.0/8".parse().unwrap()),
        );
        assert!(allowed_by_flag.is_ok());
    }
}
