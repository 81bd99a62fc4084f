//! The delivery worker: runs inside the service and sends what was enqueued.
//!
//! Each attempt is one transaction: lock the pending message that has been
//! due the longest (`FOR UPDATE SKIP LOCKED`, so replicas sharing the
//! database never pick the same one), hand it to the mailer, record the
//! outcome, commit. A success marks it sent; a failure schedules the next
//! attempt with exponential backoff, or marks it failed after the last one.
//! Either way the end of a message erases its bodies and variables.
//!
//! A replica wakes at once when it stores a message itself, and polls every
//! `WORKER_POLL_MS` for retries that fall due and for messages stored through
//! other replicas. On shutdown it stops taking messages; an attempt in flight
//! finishes and is recorded. Meanwhile the queue's depth is counted for
//! `notify_queue_depth`, the figure the notify HPA scales on.

pub mod mailer;

use std::{pin::pin, sync::Arc, time::Duration};

use platform::{clock::Clock, shutdown::Shutdown};
use sqlx::PgPool;
use tokio::{sync::Notify, task::JoinSet};
use tracing::Instrument as _;

pub use self::mailer::{Mailer, parse_sender};
use crate::{db, domain::Backoff};

/// The longest `last_error` kept: server replies can be long, the gist is
/// at the start.
const MAX_ERROR_LENGTH: usize = 1000;

/// What happened to the message an attempt picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for the last time.
    Failed,
}

#[derive(Clone, Debug)]
pub struct Worker {
    pub(crate) pool: PgPool,
    pub(crate) mailer: Mailer,
    pub(crate) clock: Clock,
    /// Notified by enqueues in this replica.
    pub(crate) wake: Arc<Notify>,
    pub(crate) backoff: Backoff,
    pub(crate) max_attempts: u32,
    pub(crate) poll_interval: Duration,
    /// Attempts in flight at once; each holds a database connection.
    pub(crate) concurrency: usize,
}

impl Worker {
    /// Delivers until `stop` triggers, then waits for attempts in flight.
    pub async fn run(self, stop: Shutdown) {
        tracing::info!(concurrency = self.concurrency, "delivery worker started");
        let mut lanes = JoinSet::new();
        for lane in 0..self.concurrency {
            let span = tracing::info_span!("delivery_worker", lane);
            lanes.spawn(self.clone().lane(stop.clone()).instrument(span));
        }
        lanes.spawn(self.clone().measure_queue(stop.clone()));
        while let Some(finished) = lanes.join_next().await {
            if let Err(err) = finished {
                tracing::error!(error = %err, "a delivery worker lane ended abnormally");
            }
        }
        tracing::info!("delivery worker stopped");
    }

    async fn lane(self, stop: Shutdown) {
        // Database failures in a row: the lane backs off while it is down.
        let mut failures = 0;
        while !stop.is_triggered() {
            // Registered before looking for work, so an enqueue that lands
            // between "nothing due" and the wait below still wakes us.
            let mut woken = pin!(self.wake.notified());
            woken.as_mut().enable();
            match self.deliver_next().await {
                Ok(Some(_)) => {
                    failures = 0;
                    continue;
                }
                Ok(None) => failures = 0,
                Err(err) => {
                    failures += 1;
                    tracing::error!(
                        error = format!("{err:#}"),
                        failures,
                        "delivery attempt could not be recorded"
                    );
                }
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(platform::health::outage_pause(self.poll_interval, failures)) => {}
                () = stop.wait() => {}
            }
        }
    }

    /// Keeps `notify_queue_depth` current: the messages waiting, counted
    /// once per poll interval (every replica reports the same shared queue).
    async fn measure_queue(self, stop: Shutdown) {
        let depth = &platform::metrics::metrics().notify_queue_depth;
        while !stop.is_triggered() {
            match db::messages::waiting(&self.pool).await {
                Ok(waiting) => {
                    depth.set(waiting);
                }
                Err(err) => tracing::debug!(error = %err, "could not count the waiting messages"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = stop.wait() => {}
            }
        }
    }

    /// Makes one attempt at the message due the longest and records its
    /// outcome; `None` when no message is due.
    pub async fn deliver_next(&self) -> anyhow::Result<Option<Outcome>> {
        let mut tx = self.pool.begin().await?;
        let Some(due) = db::messages::lock_next_due(&mut tx, self.clock.now()).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let attempts = due.attempts.saturating_add(1);
        let span = tracing::info_span!(
            "deliver",
            message_id = %due.id,
            template = %due.template,
            attempts,
        );
        platform::telemetry::continue_trace(&span, due.traceparent.as_deref());
        async {
            let sent = self.mailer.send(&due).await;
            let now = self.clock.now();
            let number = u32::try_from(attempts).unwrap_or(u32::MAX);
            let (outcome, error, wait) = match sent {
                Ok(()) => {
                    // Sent but not yet recorded: a crash here sends it again
                    // later, under the same Message-ID.
                    platform::fail_point::fail_point("notify.after_send");
                    db::messages::mark_sent(&mut tx, due.id, attempts, now).await?;
                    (Outcome::Sent, None, None)
                }
                Err(err) if number >= self.max_attempts => {
                    let error = truncated(&format!("{err:#}"));
                    db::messages::mark_failed(&mut tx, due.id, attempts, &error, now).await?;
                    (Outcome::Failed, Some(error), None)
                }
                Err(err) => {
                    let error = truncated(&format!("{err:#}"));
                    let wait = self.backoff.delay(number);
                    let next_attempt_at = now + chrono::Duration::from_std(wait)?;
                    db::messages::schedule_retry(&mut tx, due.id, attempts, &error, next_attempt_at, now).await?;
                    (Outcome::Retrying, Some(error), Some(wait))
                }
            };
            tx.commit().await?;
            // Logged once recorded: a failed commit means the attempt will
            // be made again, and is reported by the caller instead.
            let counted = match outcome {
                Outcome::Sent => "sent",
                Outcome::Retrying => "retry",
                Outcome::Failed => "failed",
            };
            platform::metrics::metrics()
                .notify_deliveries
                .get_or_create(&platform::metrics::OutcomeLabels { outcome: counted })
                .inc();
            match (outcome, error, wait) {
                (Outcome::Sent, ..) => tracing::info!("message sent"),
                (Outcome::Failed, error, _) => tracing::error!(error, "message failed for the last time; giving up"),
                (Outcome::Retrying, error, wait) => tracing::warn!(
                    error,
                    retry_in_ms = wait.unwrap_or_default().as_millis() as u64,
                    "delivery failed; will retry"
                ),
            }
            Ok(Some(outcome))
        }
        .instrument(span)
        .await
    }
}

fn truncated(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_LENGTH) {
        Some((cut, _)) => format!("{}…", &error[..cut]),
        None => error.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(MAX_ERROR_LENGTH + 5);
        let cut = truncated(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_LENGTH + 1);
        assert!(cut.ends_with('…'));
    }
}
