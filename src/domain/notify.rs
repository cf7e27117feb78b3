//! Outgoing notifications (DESIGN §6.3): where to send which events, in which format, signed with
//! which secret, and which destinations are refused.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use super::auth::TargetPattern;
use super::event::EventType;

pub const MAX_TARGETS: usize = 10;
const MAX_URL_LEN: usize = 2048;
/// Standard Webhooks: secrets are 24 to 64 random bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
const SECRET_PREFIX: &str = "whsec_";

/// The events a notify entry gets when it names none: how the deploy ended.
const TERMINAL_EVENTS: [&str; 3] = ["deploy.succeeded", "deploy.failed", "deploy.cancelled"];

/// How a notification's body is written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum NotifyFormat {
    /// The stored event, the deploy's summary and links, as Standard Webhooks `{type, timestamp, data}`.
    #[default]
    Json,
    /// A Slack incoming-webhook message: `text` for clients without Block Kit, plus `blocks`.
    Slack,
}

/// Where a notification stands in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum NotificationState {
    /// Waiting for its first attempt or its next retry.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up: a final answer (4xx other than 408, 409, 425, 429; a redirect), a refused
    /// destination, a missing secret, or the retry horizon passed.
    Failed,
    /// Its subscription was deleted or disabled before it was delivered.
    Cancelled,
}

/// Who manages a global subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ManagedBy {
    /// `/v1/subscriptions`.
    Api,
    /// The configuration file (`[[notify.subscriptions]]`); read-only through the API.
    Config,
}

/// A deploy request's `notify` entry as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// An http(s) URL that receives signed notifications. It is kept secret: API answers show
    /// only its scheme, host and port.
    pub url: String,
    /// Event types to send (`deploy.succeeded`), or a family (`deploy.*`), or `*`. Default: the
    /// terminal deploy events.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub format: NotifyFormat,
    /// The name of a secret configured on the server (`[notify.secrets]`) that signs these
    /// notifications. Default: the server's notification secret (`ROLLCALL_NOTIFY_SECRET`).
    #[serde(default)]
    pub secret: Option<String>,
}

/// A destination URL: an absolute `http` or `https` URL with a host. It may carry a credential
/// (a Slack webhook's key is its path), so its `Debug` shows only its origin.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NotifyUrl(url::Url);

impl NotifyUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let url = url::Url::parse(text).map_err(|_| "must be an absolute http(s) URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if url.host().is_none() {
            return Err("must name a host".into());
        }
        Ok(NotifyUrl(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// Scheme, host and port: what may be shown of the URL.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    /// The host when it is an address literal (WHATWG parsing: `http://2130706433/` is 127.0.0.1).
    pub fn literal_address(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        }
    }
}

impl TryFrom<String> for NotifyUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        NotifyUrl::parse(&text)
    }
}

impl From<NotifyUrl> for String {
    fn from(url: NotifyUrl) -> String {
        url.0.into()
    }
}

impl fmt::Debug for NotifyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NotifyUrl({}/…)", self.origin())
    }
}

/// A deploy's notify entry, valid: stored with the deploy, read by the outbox insert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    pub url: NotifyUrl,
    pub events: Vec<String>,
    #[serde(default)]
    pub format: NotifyFormat,
    #[serde(default)]
    pub secret: Option<String>,
}

/// A notify entry as API answers show it: the URL reduced to its origin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotifyTargetView {
    /// Scheme, host and port of the destination; the rest of the URL is kept secret.
    pub url: String,
    pub events: Vec<String>,
    pub format: NotifyFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&NotifyTarget> for NotifyTargetView {
    fn from(target: &NotifyTarget) -> Self {
        NotifyTargetView {
            url: target.url.origin(),
            events: target.events.clone(),
            format: target.format,
            secret: target.secret.clone(),
        }
    }
}

/// Serializes notify entries as [`NotifyTargetView`]s (for `#[serde(serialize_with)]`).
pub fn serialize_views<S: serde::Serializer>(
    targets: &[NotifyTarget],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(targets.iter().map(NotifyTargetView::from))
}

impl NotifyTarget {
    pub fn parse_all(specs: Vec<NotifySpec>) -> Result<Vec<Self>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if specs.len() > MAX_TARGETS {
            errors.push(FieldError::new(
                "notify",
                format!("at most {MAX_TARGETS} entries are allowed"),
            ));
        }
        let mut targets = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            match Self::parse(spec) {
                Ok(target) => targets.push(target),
                Err(found) => errors.extend(
                    found
                        .into_iter()
                        .map(|e| e.under(&format!("notify[{index}]"))),
                ),
            }
        }
        if errors.is_empty() {
            Ok(targets)
        } else {
            Err(errors)
        }
    }

    fn parse(spec: NotifySpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let url = NotifyUrl::parse(&spec.url)
            .map_err(|message| errors.push(FieldError::new("url", message)))
            .ok();
        let events = spec
            .events
            .unwrap_or_else(|| TERMINAL_EVENTS.map(String::from).to_vec());
        errors.extend(check_event_patterns(&events));
        if let Some(name) = &spec.secret
            && let Err(message) = check_secret_name(name)
        {
            errors.push(FieldError::new("secret", message));
        }
        match url {
            Some(url) if errors.is_empty() => Ok(Self {
                url,
                events,
                format: spec.format,
                secret: spec.secret,
            }),
            _ => Err(errors),
        }
    }
}

/// `events` of a notify entry or subscription: at least one, each a known type, family or `*`.
pub fn check_event_patterns(patterns: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if patterns.is_empty() {
        errors.push(FieldError::new(
            "events",
            "must name at least one event type",
        ));
    }
    for (index, pattern) in patterns.iter().enumerate() {
        if !is_known_event_pattern(pattern) {
            errors.push(FieldError::new(
                format!("events[{index}]"),
                format!("unknown event type {pattern:?} (a type such as deploy.failed, a family such as deploy.*, or *)"),
            ));
        }
    }
    errors
}

/// A pattern matches its type, its family (`deploy.*`) or everything (`*`); the outbox insert
/// evaluates the same rule in SQL (`rollcall_enqueue_notifications`).
fn is_known_event_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(family) => EventType::ALL
            .iter()
            .any(|t| t.as_str().split('.').next() == Some(family)),
        None => EventType::parse(pattern).is_some(),
    }
}

/// Names of configured secrets: what a TOML key and a log line can hold.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err("must be 1 to 63 letters, digits, '-', '_' or '.'".into())
    }
}

/// A Standard Webhooks signing secret: `whsec_` and the base64 of 24 to 64 random bytes. Its
/// `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = text
            .strip_prefix(SECRET_PREFIX)
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .is_some_and(|key| SECRET_BYTES.contains(&key.len()));
        if valid {
            Ok(WebhookSecret(text.to_owned()))
        } else {
            Err(format!(
                "must be a Standard Webhooks secret: whsec_ followed by the base64 of {} to {} random bytes",
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            ))
        }
    }

    /// A new random secret (32 bytes).
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        WebhookSecret(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Which destination addresses notifications may reach. Loopback, private, link-local (the cloud
/// metadata address 169.254.169.254 among them), unique-local and other non-public ranges are
/// refused unless a network of the allow-list contains the address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    allowed: Vec<IpNet>,
}

impl DestinationPolicy {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Parses a comma-separated list of CIDRs (`127.0.0.0/8,10.1.0.0/16`); a bare address is its
    /// own network.
    pub fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_network)
            .collect()
    }

    /// Why `address` is refused, if it is.
    pub fn refusal(&self, address: IpAddr) -> Option<String> {
        let embedded = embedded_v4(address);
        let allowed = |ip: IpAddr| self.allowed.iter().any(|net| net.contains(&ip));
        if allowed(address) || embedded.is_some_and(|v4| allowed(IpAddr::V4(v4))) {
            return None;
        }
        let range = match embedded {
            Some(v4) => v4_range(v4),
            None => match address {
                IpAddr::V4(v4) => v4_range(v4),
                IpAddr::V6(v6) => v6_range(v6),
            },
        }?;
        Some(format!(
            "{address} is a {range} address; destinations on non-public networks need \
             --notify-allow-networks"
        ))
    }

    /// The check at submission: URLs whose host is an address literal (no DNS lookup is made).
    pub fn check_literal(&self, url: &NotifyUrl) -> Result<(), String> {
        match url.literal_address() {
            Some(address) => self.refusal(address).map_or(Ok(()), Err),
            None => Ok(()),
        }
    }
}

fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{text:?} is not a network in CIDR notation (e.g. 10.0.0.0/8)"))
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:10.0.0.1`), IPv4-compatible or NAT64
/// (`64:ff9b::/96`) IPv6 address: it reaches that IPv4 host.
fn embedded_v4(address: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = v6.segments();
    let tail = Ipv4Addr::new(
        (segments[6] >> 8) as u8,
        segments[6] as u8,
        (segments[7] >> 8) as u8,
        segments[7] as u8,
    );
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let compatible = segments[..6] == [0; 6] && !matches!(segments[6..], [0, 0] | [0, 1]);
    (nat64 || compatible).then_some(tail)
}

fn v4_range(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    Some(if v4.is_loopback() {
        "loopback"
    } else if v4.is_private() {
        "private"
    } else if v4.is_link_local() {
        "link-local"
    } else if a == 0 {
        "unspecified"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (carrier-grade NAT)"
    } else if v4.is_broadcast()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
    {
        "reserved"
    } else if v4.is_multicast() {
        "multicast"
    } else {
        return None;
    })
}

fn v6_range(v6: Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    Some(if v6.is_loopback() {
        "loopback"
    } else if v6.is_unspecified() {
        "unspecified"
    } else if first & 0xfe00 == 0xfc00 {
        "unique-local"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if first & 0xffc0 == 0xfec0 {
        "site-local"
    } else if v6.is_multicast() {
        "multicast"
    } else {
        return None;
    })
}

/// What the server's notification configuration lets a deploy request ask for: checked when a
/// deploy is submitted, so that a notification that cannot be signed or sent is refused up front.
#[derive(Debug, Clone, Default)]
pub struct NotifyRules {
    pub destinations: DestinationPolicy,
    /// Names of the configured secrets (`[notify.secrets]`).
    pub secret_names: BTreeSet<String>,
    /// Whether `ROLLCALL_NOTIFY_SECRET` is set.
    pub has_default_secret: bool,
}

impl NotifyRules {
    /// Errors name the entry and field (`notify[0].url`, `notify[1].secret`).
    pub fn check(&self, targets: &[NotifyTarget]) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        for (index, target) in targets.iter().enumerate() {
            let field = |name: &str| format!("notify[{index}].{name}");
            if let Err(message) = self.destinations.check_literal(&target.url) {
                errors.push(FieldError::new(field("url"), message));
            }
            match &target.secret {
                Some(name) if !self.secret_names.contains(name) => errors.push(FieldError::new(
                    field("secret"),
                    format!("no secret named {name:?} is configured on the server ([notify.secrets])"),
                )),
                None if !self.has_default_secret => errors.push(FieldError::new(
                    field("secret"),
                    "the server has no default notification secret (ROLLCALL_NOTIFY_SECRET): name a configured secret",
                )),
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A global subscription as configured or sent to `/v1/subscriptions`, valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub name: String,
    pub url: NotifyUrl,
    pub events: Vec<String>,
    pub format: NotifyFormat,
    /// The releases whose events it receives (`cluster/namespace/release` globs).
    pub targets: Vec<TargetPattern>,
}

impl Subscription {
    /// Checks every field (errors name them) including the destination against `destinations`.
    pub fn parse(
        name: String,
        url: &str,
        events: Option<Vec<String>>,
        format: NotifyFormat,
        targets: Option<Vec<String>>,
        destinations: &DestinationPolicy,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if name.trim().is_empty() || name.len() > 100 {
            errors.push(FieldError::new("name", "must be 1 to 100 characters"));
        }
        let url = match NotifyUrl::parse(url) {
            Ok(url) => match destinations.check_literal(&url) {
                Ok(()) => Some(url),
                Err(message) => {
                    errors.push(FieldError::new("url", message));
                    None
                }
            },
            Err(message) => {
                errors.push(FieldError::new("url", message));
                None
            }
        };
        let events = events.unwrap_or_else(|| TERMINAL_EVENTS.map(String::from).to_vec());
        errors.extend(check_event_patterns(&events));
        let targets = targets.unwrap_or_else(|| vec!["*/*/*".to_owned()]);
        if targets.is_empty() {
            errors.push(FieldError::new("targets", "must name at least one target"));
        }
        let mut patterns = Vec::new();
        for (index, target) in targets.iter().enumerate() {
            match target.parse::<TargetPattern>() {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => errors.push(FieldError::new(format!("targets[{index}]"), message)),
            }
        }
        match url {
            Some(url) if errors.is_empty() => Ok(Subscription {
                name,
                url,
                events,
                format,
                targets: patterns,
            }),
            _ => Err(errors),
        }
    }
}

/// A subscription of the configuration file, with the configured secret that signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredSubscription {
    pub subscription: Subscription,
    /// `None`: the default notification secret.
    pub secret_name: Option<String>,
}

/// What a subscription's sealed secret is bound to (`ServerKey::seal`), so that it opens only for
/// that subscription.
pub fn sealing_context(subscription: uuid::Uuid) -> String {
    format!("subscription:{subscription}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> NotifySpec {
        NotifySpec {
            url: url.into(),
            events: None,
            format: NotifyFormat::Json,
            secret: None,
        }
    }

    #[test]
    fn urls_and_event_patterns_are_checked() {
        let ok = NotifySpec {
            events: Some(vec![
                "deploy.*".into(),
                "resource.failed".into(),
                "*".into(),
            ]),
            ..spec("https://chat.example/hook")
        };
        let parsed = NotifyTarget::parse_all(vec![ok, spec("http://x.example")]).unwrap();
        assert_eq!(parsed[1].events, TERMINAL_EVENTS);
        let bad = NotifySpec {
            events: Some(vec!["deploy.exploded".into()]),
            secret: Some("no spaces".into()),
            ..spec("ftp://x")
        };
        let errors = NotifyTarget::parse_all(vec![bad]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["notify[0].url", "notify[0].events[0]", "notify[0].secret"]
        );
    }

    #[test]
    fn a_url_shows_only_its_origin() {
        let url = NotifyUrl::parse("https://hooks.slack.com/services/T0/B0/SECRETKEY").unwrap();
        assert_eq!(url.origin(), "https://hooks.slack.com");
        assert!(!format!("{url:?}").contains("SECRETKEY"));
        let target =
            NotifyTarget::parse_all(vec![spec("http://user:pw@portal.example:8443/hook?key=1")])
                .unwrap();
        let view = serde_json::to_value(NotifyTargetView::from(&target[0])).unwrap();
        assert_eq!(view["url"], "http://portal.example:8443");
        // Stored in full.
        let stored = serde_json::to_value(&target[0]).unwrap();
        assert_eq!(
            stored["url"],
            "http://user:pw@portal.example:8443/hook?key=1"
        );
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let policy = DestinationPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "224.0.0.1",
        ] {
            let address: IpAddr = refused.parse().unwrap();
            assert!(policy.refusal(address).is_some(), "{refused} is refused");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            assert_eq!(policy.refusal(public.parse().unwrap()), None, "{public}");
        }
        let message = policy.refusal("169.254.169.254".parse().unwrap()).unwrap();
        assert!(message.contains("link-local"), "{message}");

        let allowing = DestinationPolicy::new(
            DestinationPolicy::parse_networks("127.0.0.0/8, 10.1.0.0/16,::1").unwrap(),
        );
        assert_eq!(allowing.refusal("127.0.0.1".parse().unwrap()), None);
        assert_eq!(allowing.refusal("::ffff:127.0.0.1".parse().unwrap()), None);
        assert_eq!(allowing.refusal("10.1.9.9".parse().unwrap()), None);
        assert_eq!(allowing.refusal("::1".parse().unwrap()), None);
        assert!(allowing.refusal("10.2.0.1".parse().unwrap()).is_some());
        assert!(DestinationPolicy::parse_networks("10.0.0.0/33").is_err());
        assert!(DestinationPolicy::parse_networks("localnet").is_err());
    }

    #[test]
    fn literal_addresses_are_checked_as_browsers_parse_them() {
        let policy = DestinationPolicy::default();
        for refused in [
            "http://127.0.0.1:8080/x",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let url = NotifyUrl::parse(refused).unwrap();
            assert!(policy.check_literal(&url).is_err(), "{refused}");
        }
        // Names are resolved at send time, not on the request path.
        let named = NotifyUrl::parse("http://localhost:8080/").unwrap();
        assert!(policy.check_literal(&named).is_ok());
    }

    #[test]
    fn rules_need_a_known_secret_and_an_allowed_literal() {
        let rules = NotifyRules {
            destinations: DestinationPolicy::default(),
            secret_names: BTreeSet::from(["portal".to_owned()]),
            has_default_secret: false,
        };
        let targets = NotifyTarget::parse_all(vec![
            NotifySpec {
                secret: Some("portal".into()),
                ..spec("https://portal.example/hook")
            },
            spec("http://10.0.0.1/hook"),
            NotifySpec {
                secret: Some("other".into()),
                ..spec("https://x.example")
            },
        ])
        .unwrap();
        let errors = rules.check(&targets).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["notify[1].url", "notify[1].secret", "notify[2].secret"]
        );
    }

    #[test]
    fn webhook_secrets_are_whsec_base64_of_24_to_64_bytes() {
        let generated = WebhookSecret::generate();
        assert!(WebhookSecret::parse(generated.expose()).is_ok());
        assert!(WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        for bad in [
            "",
            "whsec_",
            "whsec_c2hvcnQ=",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{generated:?}"), "WebhookSecret(<redacted>)");
    }

    #[test]
    fn subscriptions_name_their_invalid_fields() {
        let errors = Subscription::parse(
            String::new(),
            "http://192.168.0.10/hook",
            Some(vec!["nope".into()]),
            NotifyFormat::Slack,
            Some(vec!["prod".into()]),
            &DestinationPolicy::default(),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "url", "events[0]", "targets[0]"]);
        let subscription = Subscription::parse(
            "portal".into(),
            "https://portal.example/hooks",
            None,
            NotifyFormat::Json,
            None,
            &DestinationPolicy::default(),
        )
        .unwrap();
        assert_eq!(subscription.targets, [TargetPattern::everything()]);
        assert_eq!(subscription.events, TERMINAL_EVENTS);
    }
}
