//! Access follows money: what billing owes license-svc, recorded in the
//! same transaction as the change (license-svc is not running here, so the
//! effects wait in the outbox).

use chrono::Duration;
use proto::billing::v1 as pb;

use crate::helpers::{bearer, spawn_app};

#[tokio::test]
async fn paying_failing_recovering_and_expiring_each_owe_one_access_change() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    let user = customer.id.to_string();
    // The checkout, then its first invoice, paid.
    let paid = (user.clone(), "active".to_owned());
    assert_eq!(app.access_owed().await, [paid.clone(), paid]);

    let failed = app.stripe.fail_payment(&stripe_id).unwrap();
    app.deliver(&failed).await.unwrap();
    app.deliver(&failed).await.unwrap();
    let paid = app.stripe.pay(&stripe_id).unwrap();
    app.deliver(&paid).await.unwrap();

    app.cancel(&customer).await.unwrap();
    app.clock.advance(Duration::days(30));
    app.billing.expire_due().await.unwrap();
    app.billing.expire_due().await.unwrap();

    let owed: Vec<String> = app.access_owed().await.into_iter().map(|(_, access)| access).collect();
    assert_eq!(owed, ["active", "active", "suspended", "active", "suspended"]);
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload->>'version')::bigint FROM outbox WHERE topic = 'license.customer_access' \
         ORDER BY created_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "{versions:?}");
}

#[tokio::test]
async fn closing_an_account_cancels_without_renewal_and_suspends_once() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    let closed = app.close_account(&customer, "deactivated:7").await.unwrap();
    assert_eq!(closed.status(), pb::SubscriptionStatus::Cancelled);
    assert_eq!(app.stripe.cancel_at_period_end_updates(&stripe_id), ["true"]);

    // The same closure delivered again changes nothing.
    let again = app.close_account(&customer, "deactivated:7").await.unwrap();
    assert_eq!(again.status(), pb::SubscriptionStatus::Cancelled);
    assert_eq!(app.stripe.cancel_at_period_end_updates(&stripe_id), ["true"]);
    assert_eq!(app.events("cancelled").await, 1);
    let owed: Vec<String> = app.access_owed().await.into_iter().map(|(_, access)| access).collect();
    assert_eq!(owed, ["active", "active", "suspended"]);
    let reason: Option<String> =
        sqlx::query_scalar("SELECT last_cancellation_reason FROM tenants WHERE owner_user_id = $1")
            .bind(customer.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("moving to a competitor"));
    // Having left, they are a returning customer once the paid period ends.
    assert!(!app.pricing(&customer).await.welcome_back_eligible);
    app.clock.advance(Duration::days(31));
    assert!(app.pricing(&customer).await.welcome_back_eligible);
}

#[tokio::test]
async fn closing_an_account_that_never_subscribed_still_suspends_its_keys() {
    let app = spawn_app().await;
    let customer = app.customer();
    let closed = app.close_account(&customer, "deactivated:1").await.unwrap();
    assert_eq!(closed.status(), pb::SubscriptionStatus::None);
    assert_eq!(app.access_owed().await, [(customer.id.to_string(), "suspended".into())]);

    let mut request = tonic::Request::new(pb::CloseAccountRequest {
        user_id: customer.id.to_string(),
        reason: String::new(),
        idempotency_key: "x".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {}", customer.token).parse().unwrap());
    let refused = app.client.clone().close_account(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // Nor an admin: closing and erasing are asked for by identity-svc only.
    fn as_admin<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }
    let refused = app
        .client
        .clone()
        .close_account(as_admin(
            &app.admin,
            pb::CloseAccountRequest {
                user_id: customer.id.to_string(),
                reason: String::new(),
                idempotency_key: "y".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = app
        .client
        .clone()
        .erase_customer(as_admin(
            &app.admin,
            pb::EraseCustomerRequest {
                user_id: customer.id.to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn undoing_the_cancellation_of_a_closed_then_reopened_account_restores_access() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    app.close_account(&customer, "deactivated:3").await.unwrap();
    assert_eq!(
        app.access_changes().await,
        ["active", "active", "suspended:account_closed"]
    );

    // The account was reopened; its owner undoes the cancellation.
    let undone = app.reactivate(&customer).await.expect("undo");
    assert_eq!(undone.status(), pb::SubscriptionStatus::Active);
    assert_eq!(app.stripe.cancel_at_period_end_updates(&stripe_id), ["true", "false"]);
    assert_eq!(
        app.access_changes().await,
        ["active", "active", "suspended:account_closed", "active"],
        "billing resumes, so access comes back"
    );
}

#[tokio::test]
async fn every_paid_invoice_makes_access_follow_the_money() {
    let app = spawn_app().await;
    let (_, stripe_id) = app.subscriber().await;
    // A renewal paid, with no failure before it: access is confirmed again
    // (keys suspended for payment by a lost or late event come back).
    let renewal = app.stripe.pay(&stripe_id).unwrap();
    app.deliver(&renewal).await.unwrap();
    assert_eq!(app.access_changes().await, ["active", "active", "active"]);
}

#[tokio::test]
async fn a_closed_account_gets_no_access_back_from_billing() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    app.close_account(&customer, "deactivated:9").await.unwrap();
    // Stripe collects a payment still due: the account is still closed.
    let paid = app.stripe.pay(&stripe_id).unwrap();
    app.deliver(&paid).await.unwrap();
    assert_eq!(
        app.access_changes().await,
        ["active", "active", "suspended:account_closed"]
    );
}

#[tokio::test]
async fn an_admin_reads_a_customers_subscription_and_a_customer_reads_only_their_own() {
    let app = spawn_app().await;
    let (customer, _) = app.subscriber().await;
    let other = app.customer();
    let asking_for = |token: &str| {
        bearer(
            token,
            pb::GetSubscriptionRequest {
                user_id: customer.id.to_string(),
            },
        )
    };

    let seen = app
        .client
        .clone()
        .get_subscription(asking_for(&app.admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.status(), pb::SubscriptionStatus::Active);
    assert_eq!(seen, app.subscription(&customer).await);

    let refused = app
        .client
        .clone()
        .get_subscription(asking_for(&other.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let malformed = bearer(
        &app.admin,
        pb::GetSubscriptionRequest {
            user_id: "not-a-uuid".into(),
        },
    );
    let refused = app.client.clone().get_subscription(malformed).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}
