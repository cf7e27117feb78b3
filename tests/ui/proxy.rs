//! A TCP relay in front of the server whose connections a test can cut, as a proxy or a flaky
//! network would: the pages must reconnect and resume without losing or repeating anything.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct Relay {
    /// `http://127.0.0.1:<port>`: the origin the browser sees.
    pub address: String,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl Relay {
    /// Relays every connection to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Relay {
        let target = upstream
            .strip_prefix("http://")
            .expect("an http address")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tracked = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let relayed = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _closed = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().unwrap().push(relayed.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            address,
            connections,
            accepting,
        }
    }

    /// Cuts every open connection; new ones are relayed again.
    pub fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}
