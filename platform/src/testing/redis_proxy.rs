//! A TCP proxy in front of the test Redis whose connections a test can cut,
//! as a Redis restart or a proxy timing out an idle connection would: the
//! client's next command meets a connection that is gone.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::config::Secret;

/// Forwards to the Redis of `REDIS_URL` (plain TCP) until dropped.
#[derive(Debug)]
pub struct RedisProxy {
    address: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl RedisProxy {
    pub async fn start() -> Self {
        let upstream = upstream_address(super::redis_url().expose());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let address = listener.local_addr().expect("a bound listener has an address");
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().expect("not poisoned").push(forward);
                }
            }
        });
        Self {
            address,
            connections,
            accept,
        }
    }

    /// A `redis://` URL through the proxy.
    pub fn url(&self) -> Secret<String> {
        Secret::from(format!("redis://{}", self.address))
    }

    /// Closes every connection made so far; new ones are still forwarded.
    pub fn cut(&self) {
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `host:port` of a `redis://[user:pass@]host:port[/db]` URL.
fn upstream_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split('/').next().unwrap_or(rest);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    }
}
