//! Standard Webhooks signing: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64
//! of HMAC-SHA256(id.timestamp.body)>` with the destination's secret.

use std::collections::BTreeMap;

use standardwebhooks::Webhook;

use crate::domain::notify::{WebhookSecret, sealing_context};
use crate::domain::sealing::ServerKey;
use crate::store::notifications::{Claimed, ClaimedSubscription};

/// The three headers of one signed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

/// Finds the secret of a notification and signs with it.
pub struct Signer {
    default: Option<WebhookSecret>,
    named: BTreeMap<String, WebhookSecret>,
    /// Opens the secrets of API subscriptions.
    server_key: Option<ServerKey>,
}

impl Signer {
    pub fn new(
        default: Option<WebhookSecret>,
        named: BTreeMap<String, WebhookSecret>,
        server_key: Option<ServerKey>,
    ) -> Self {
        Self {
            default,
            named,
            server_key,
        }
    }

    /// The secret that signs `notification`: its subscription's own, the configured one it names,
    /// or the default; why none, when none is available (a final failure).
    pub fn secret_of(&self, notification: &Claimed) -> Result<WebhookSecret, String> {
        let name = match &notification.subscription {
            Some(ClaimedSubscription {
                id,
                secret_sealed: Some(sealed),
                ..
            }) => return self.open(*id, sealed),
            Some(subscription) => subscription.secret_name.as_deref(),
            None => notification.secret_name.as_deref(),
        };
        match name {
            Some(name) => self.named.get(name).cloned().ok_or_else(|| {
                format!("no secret named {name:?} is configured ([notify.secrets])")
            }),
            None => self.default.clone().ok_or_else(|| {
                "no default notification secret is configured (ROLLCALL_NOTIFY_SECRET)".to_owned()
            }),
        }
    }

    fn open(&self, subscription: uuid::Uuid, sealed: &str) -> Result<WebhookSecret, String> {
        let key = self.server_key.as_ref().ok_or(
            "the subscription's secret is sealed and the server has no ROLLCALL_SECRET_KEY",
        )?;
        let opened = key
            .open(&sealing_context(subscription), sealed)
            .map_err(|error| error.to_string())?;
        WebhookSecret::parse(&opened)
    }
}

/// Signs `body` as message `id` at `timestamp` (seconds since the epoch).
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &str) -> SignedHeaders {
    let webhook = Webhook::new(secret.expose()).expect("a parsed WebhookSecret is base64");
    let signature = webhook
        .sign(id, timestamp, body.as_bytes())
        .expect("a str body is UTF-8");
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (spec/standard-webhooks.md).
    #[test]
    fn signs_the_specification_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signed = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signed.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
