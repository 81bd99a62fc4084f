//! Every committed change to a key is announced on Redis pub/sub, so the
//! gateways' caches of validations drop the key at once.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use platform::{invalidation, license_key};
use proto::license::v1 as pb;
use tonic::Request;

use crate::helpers::{TestApp, bearer, spawn_app};

/// The keys announced as changed, in order.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

impl invalidation::Listener for Heard {
    fn subscribed(&self) {}
    fn unsubscribed(&self) {}
    fn changed(&self, item: &str) {
        self.0.lock().unwrap().push(item.to_owned());
    }
}

impl Heard {
    async fn listen(app: &TestApp) -> Self {
        let heard = Self::default();
        let subscription = invalidation::subscribe(&app.keys.url, &app.keys.prefix, license_key::CHANGED_TOPIC)
            .await
            .expect("subscribe");
        tokio::spawn(invalidation::listen(subscription, heard.clone(), app.shutdown.clone()));
        heard
    }

    /// Waits for the `count`-th announcement and returns all of them.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        platform::testing::eventually_some(&format!("{count} announcements"), || {
            let heard = self.0.lock().unwrap().clone();
            std::future::ready((heard.len() >= count).then_some(heard))
        })
        .await
    }
}

#[tokio::test]
async fn every_change_to_a_key_is_announced_once_committed() {
    let app = spawn_app().await;
    let heard = Heard::listen(&app).await;
    let key = app.trial("ada@example.com").await.key;
    let mut expected = vec![key.clone()];
    assert_eq!(heard.wait_for(expected.len()).await, expected, "creation");

    let mut client = app.client.clone();
    let update = pb::UpdateKeyRequest {
        key: key.to_lowercase(),
        features: Some(pb::FeatureFlags {
            flags: [("export".to_owned(), true)].into(),
        }),
        ..Default::default()
    };
    client.update_key(bearer(&app.admin, update)).await.expect("update");
    app.extend(&key, 3).await.expect("extend");
    app.disable(&key).await.expect("disable");
    app.reactivate(&key).await.expect("reactivate");
    app.close_deal(&key).await.expect("close the deal");
    for access in [pb::CustomerAccess::Suspended, pb::CustomerAccess::Active] {
        let mut request = Request::new(pb::SetCustomerAccessRequest {
            customer: Some(pb::set_customer_access_request::Customer::Email(
                "ada@example.com".into(),
            )),
            access: access.into(),
            version: 0,
            ..Default::default()
        });
        app.internal.attach(&mut request);
        client.set_customer_access(request).await.expect("set access");
    }
    // Announced by its one spelling, however the caller typed it.
    expected.extend(std::iter::repeat_n(key.clone(), 7));
    assert_eq!(heard.wait_for(expected.len()).await, expected);

    // What does not change a key is not announced: refusals, reads, emails.
    assert!(app.disable(&key).await.is_ok());
    assert!(app.disable(&key).await.is_err(), "already disabled");
    app.get(&key).await.expect("get");
    app.validate(&key).await.expect("validate");
    let email = pb::EmailKeyRequest { key: key.clone() };
    assert!(
        client.email_key(bearer(&app.admin, email)).await.is_err(),
        "disabled keys are not emailed"
    );
    let reactivated = app.reactivate(&key).await.expect("reactivate");
    let email = pb::EmailKeyRequest { key: key.clone() };
    client.email_key(bearer(&app.admin, email)).await.expect("email");
    app.disable(&reactivated.key).await.expect("disable");
    expected.extend([key.clone(), key.clone(), key.clone()]);
    assert_eq!(heard.wait_for(expected.len()).await, expected);
    // Proving that nothing more comes: no outcome to poll for, so a pause
    // long enough for a stray announcement to arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(heard.wait_for(0).await, expected, "nothing more was announced");
}
