//! The delivery worker of a process: it claims due notifications (woken by the NOTIFY of the
//! statements that write them, and by the clock for retries), sends each with a fresh timestamp
//! and signature under its stable `webhook-id`, and records every attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::PgListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use super::NotifyContext;
use super::destination::Delivery;
use super::format::{FailureEvidence, Links, Message, render};
use super::retry::{Decision, decide};
use super::signing::sign;
use crate::domain::event::{EventType, Level};
use crate::domain::notify::NotifyUrl;
use crate::store::notifications::{self, AttemptRecord, Claimed, Next, OUTBOX_CHANNEL};
use crate::store::{StoreError, deploy_events, deploys};
use crate::telemetry::NotificationResult;

/// Subscribes to the outbox's wake-ups, then starts the worker on `tasks`; it stops with the
/// context's shutdown, after the attempts under way.
pub async fn spawn(context: NotifyContext, tasks: &TaskTracker) -> Result<(), StoreError> {
    let mut listener = PgListener::connect_with(&context.pool).await?;
    listener.listen(OUTBOX_CHANNEL).await?;
    tasks.spawn(run(context, listener));
    Ok(())
}

async fn run(context: NotifyContext, mut listener: PgListener) {
    let slots = Arc::new(Semaphore::new(context.options.max_in_flight.max(1)));
    let mut attempts = JoinSet::new();
    let shutdown = context.shutdown.clone();
    loop {
        while attempts.try_join_next().is_some() {}
        let free = slots.available_permits();
        let mut claimed_all = false;
        if free > 0 {
            match notifications::claim_due(&context.pool, free as i64, context.options.lease())
                .await
            {
                Ok(claimed) => {
                    claimed_all = claimed.len() == free;
                    for notification in claimed {
                        let permit = slots.clone().try_acquire_owned().expect("a free slot");
                        let context = context.clone();
                        attempts.spawn(async move {
                            attempt(&context, notification).await;
                            drop(permit);
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming due notifications failed"),
            }
        }
        // More may be due at once; otherwise sleep until the next is due or a wake-up comes.
        let pause = match slots.available_permits() {
            // Every slot is busy: the next wake-up is a slot coming free.
            0 => context.options.poll_interval,
            _ if claimed_all => Duration::ZERO,
            _ => until_next_due(&context).await,
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            received = listener.try_recv() => if let Err(error) = received {
                tracing::warn!(%error, "notification listener failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            },
            Some(_) = attempts.join_next(), if slots.available_permits() == 0 => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
    while attempts.join_next().await.is_some() {}
}

/// How long until the next notification is due, at most the poll interval.
async fn until_next_due(context: &NotifyContext) -> Duration {
    let poll = context.options.poll_interval;
    match notifications::next_due(&context.pool).await {
        Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or_default().min(poll),
        Ok(None) => poll,
        Err(error) => {
            tracing::warn!(%error, "reading the outbox failed");
            poll
        }
    }
}

/// One attempt of one notification, recorded. Errors are logged without the URL.
async fn attempt(context: &NotifyContext, notification: Claimed) {
    let id = notification.id;
    match try_attempt(context, &notification).await {
        Ok(next) => {
            let result = match next {
                Next::Delivered => NotificationResult::Delivered,
                Next::RetryAt(_) => NotificationResult::Retry,
                Next::Failed(_) => NotificationResult::Failed,
                Next::Cancelled(_) => NotificationResult::Cancelled,
            };
            let since_event = (Utc::now() - notification.created_at)
                .to_std()
                .unwrap_or_default();
            context.metrics.notification(result, since_event);
        }
        Err(error) => {
            // Retried once its claim runs out.
            tracing::warn!(notification_id = %id, %error, "notification attempt not recorded");
        }
    }
}

async fn try_attempt(context: &NotifyContext, notification: &Claimed) -> Result<Next, StoreError> {
    let pool = &context.pool;
    if let Some(subscription) = &notification.subscription
        && subscription.enabled != Some(true)
    {
        let next = Next::Cancelled("the subscription is disabled".into());
        notifications::record_attempt(pool, notification.id, None, None, &next, None).await?;
        return Ok(next);
    }
    let payload = match &notification.payload {
        Some(payload) => payload.clone(),
        None => render_payload(context, notification).await?,
    };
    let started_at = Utc::now();
    let url = NotifyUrl::parse(&notification.url);
    let delivery = match (context.signer.secret_of(notification).as_ref(), &url) {
        (Ok(secret), Ok(url)) => {
            let signed = sign(
                secret,
                &notification.id.to_string(),
                started_at.timestamp(),
                &payload,
            );
            context.client.post(url, &signed, payload.clone()).await
        }
        (Err(reason), _) | (_, Err(reason)) => Delivery::Refused {
            reason: reason.clone(),
        },
    };
    let (status_code, latency, error) = match &delivery {
        Delivery::Answered {
            status, latency, ..
        } => (Some(*status), *latency, None),
        Delivery::NoAnswer { error, latency } => (None, *latency, Some(error.clone())),
        Delivery::Refused { reason } => (None, Duration::ZERO, Some(reason.clone())),
    };
    let now = Utc::now();
    let mut disables = None;
    let next = match decide(&delivery, now) {
        Decision::Delivered => Next::Delivered,
        Decision::Final { reason, gone } => {
            if gone {
                disables = notification.subscription.as_ref().map(|found| found.id);
            }
            Next::Failed(reason)
        }
        Decision::Retry { after } => {
            let retry = context.options.retry;
            let delay = after
                .unwrap_or_else(|| retry.delay(notification.attempt as u32, rand::random::<f64>()));
            let due = now + delay;
            if due > notification.created_at + retry.horizon {
                Next::Failed(format!(
                    "gave up after {} attempts: the next would come after the retry horizon",
                    notification.attempt
                ))
            } else {
                Next::RetryAt(due)
            }
        }
    };
    let record = AttemptRecord {
        attempt: notification.attempt,
        at: started_at,
        status_code,
        latency,
        error,
    };
    let first_payload = notification.payload.is_none().then_some(payload.as_str());
    notifications::record_attempt(
        pool,
        notification.id,
        Some(&record),
        first_payload,
        &next,
        disables,
    )
    .await?;
    // The destination as its origin only: the rest of a notify URL may be its key.
    tracing::debug!(
        notification_id = %notification.id,
        attempt = notification.attempt,
        destination = url.as_ref().map(NotifyUrl::origin).unwrap_or_default(),
        status_code,
        ?next,
        "notification attempt"
    );
    if let Next::Failed(reason) = &next {
        tracing::warn!(notification_id = %notification.id, deploy_id = %notification.deploy_id, reason, "notification given up");
    }
    Ok(next)
}

/// The body of a notification's first attempt, from the event, the deploy and its report.
async fn render_payload(
    context: &NotifyContext,
    notification: &Claimed,
) -> Result<String, StoreError> {
    let pool = &context.pool;
    let deploy = deploys::get(pool, notification.deploy_id)
        .await?
        .ok_or(StoreError::DeployNotFound(notification.deploy_id))?;
    // The first event after `seq - 1`, if it is still the one (retention may have pruned it).
    let event =
        deploy_events::list_after(pool, notification.deploy_id, notification.event_seq - 1, 1)
            .await?
            .into_iter()
            .next()
            .filter(|event| event.seq == notification.event_seq)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "event {} of deploy {} is gone",
                    notification.event_seq, notification.deploy_id
                ))
            })?;
    let failure = match event.level {
        Level::Error => deploy_events::latest_of_type(
            pool,
            deploy.id,
            EventType::Report,
            Level::Error,
            event.seq,
        )
        .await?
        .and_then(|report| FailureEvidence::from_report(&report, deploy.verdict.as_ref())),
        _ => None,
    };
    let message = Message {
        event: &event,
        deploy: &deploy,
        failure,
        links: Links::of(deploy.id, context.public_url.as_ref()),
    };
    Ok(render(notification.format, &message))
}
