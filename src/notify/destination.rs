//! The destination guard: the HTTP client that sends notifications connects only to addresses the
//! [`DestinationPolicy`] allows. Names are resolved by the client's own resolver, which drops the
//! refused addresses, so the connection goes to an address that was checked (no second lookup a
//! DNS rebinding could answer differently); address literals are checked before sending.
//! Redirects are not followed and no proxy is used (through a proxy, the address reached would
//! not be the one checked).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use super::signing::SignedHeaders;
use crate::domain::notify::{DestinationPolicy, NotifyUrl};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver answered.
    Answered {
        status: u16,
        /// Its `Retry-After` header, if any.
        retry_after: Option<String>,
        latency: Duration,
    },
    /// No answer: a timeout, a connection or DNS error. Worth retrying.
    NoAnswer { error: String, latency: Duration },
    /// The destination is not allowed; nothing was sent.
    Refused { reason: String },
}

/// Sends notifications to allowed destinations only. Cheap to clone.
#[derive(Clone)]
pub struct GuardedClient {
    client: reqwest::Client,
    policy: Arc<DestinationPolicy>,
}

/// The resolver's refusal, found again in the client's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

struct GuardedResolver {
    policy: Arc<DestinationPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match policy.refusal(address.ip()) {
                    Some(reason) => {
                        refusals.push(reason);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let reason = refusals
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "the name resolves to no address".to_owned());
                return Err(Box::new(Refused(format!("{host}: {reason}"))) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl GuardedClient {
    pub fn new(policy: DestinationPolicy, timeout: Duration) -> Self {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the notification HTTP client builds");
        Self { client, policy }
    }

    /// POSTs a signed JSON body. Errors never carry the URL, which may hold a credential.
    pub async fn post(&self, url: &NotifyUrl, signed: &SignedHeaders, body: String) -> Delivery {
        if let Err(reason) = self.policy.check_literal(url) {
            return Delivery::Refused { reason };
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("webhook-id", signed.id.clone()),
            ("webhook-timestamp", signed.timestamp.to_string()),
            ("webhook-signature", signed.signature.clone()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        let started = Instant::now();
        let sent = self
            .client
            .post(url.as_url().clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let latency = started.elapsed();
        match sent {
            Ok(response) => Delivery::Answered {
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
                latency,
            },
            Err(error) => match refusal_in(&error) {
                Some(reason) => Delivery::Refused { reason },
                None => Delivery::NoAnswer {
                    error: describe(error),
                    latency,
                },
            },
        }
    }
}

fn refusal_in(error: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        source = cause.source();
    }
    None
}

/// The error and its causes, without the URL.
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
