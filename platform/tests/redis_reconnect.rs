//! Rate limits keep answering when their Redis connection was dropped
//! under them (Redis restarted, a proxy closed it): the command runs again
//! on a fresh connection instead of failing the call.

use std::time::Duration;

use platform::{
    kv::Kv,
    limits::{Limiter, Rate},
    testing::redis_proxy::RedisProxy,
};

const MINUTE: Duration = Duration::from_secs(60);

async fn limiter_behind(proxy: &RedisProxy) -> Limiter {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    Limiter::new(
        Kv::connect(&proxy.url(), &prefix)
            .await
            .expect("connect through the proxy"),
    )
}

#[tokio::test]
async fn a_limit_check_after_the_connection_dropped_is_answered() {
    let proxy = RedisProxy::start().await;
    let limiter = limiter_behind(&proxy).await;
    limiter.hit("test", "ada", Rate::new(1, MINUTE)).await.unwrap().unwrap();

    proxy.cut();
    let over = limiter
        .check("test", "ada", Rate::new(1, MINUTE))
        .await
        .expect("answered");
    assert!(over.is_err(), "the attempt counted before the drop still counts");
}

#[tokio::test]
async fn a_cooldown_after_the_connection_dropped_is_answered_and_still_holds() {
    let proxy = RedisProxy::start().await;
    let limiter = limiter_behind(&proxy).await;
    limiter
        .check("test", "ada", Rate::new(1, MINUTE))
        .await
        .unwrap()
        .unwrap();

    proxy.cut();
    let first = limiter.cooldown("test", "ada", MINUTE).await.expect("answered");
    assert!(first.is_ok(), "the first attempt is allowed");
    proxy.cut();
    let second = limiter.cooldown("test", "ada", MINUTE).await.expect("answered");
    let refused = second.expect_err("the cooldown holds");
    assert!(refused.retry_after > Duration::from_secs(55), "{refused:?}");
}
