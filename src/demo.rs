//! `svcproxy demo`: three "hello" pods on loopback and the proxy in front of
//! them, from `config/demo`, as the project's seed example meant it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

/// The demo manifests, built in so `demo` works from any directory.
pub const MANIFEST: &str = include_str!("../config/demo/hello.yaml");
/// Where the demo pods listen, as `config/demo` says.
pub const PODS: [&str; 3] = ["127.0.1.1:8000", "127.0.1.2:8000", "127.0.1.3:8000"];

/// Starts the hello pods; each answers any HTTP request with
/// `Hello, k8s! from hello-N`.
pub async fn start_pods() -> io::Result<()> {
    for (i, addr) in PODS.iter().enumerate() {
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        tokio::spawn(serve(listener, format!("hello-{}", i + 1)));
    }
    Ok(())
}

async fn serve(listener: TcpListener, name: String) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let body = format!("Hello, k8s! from {name}\n");
        tokio::spawn(async move {
            // Read the request head (any request gets the same answer).
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = stream.write_all(response.as_bytes()).await {
                debug!(error = %e, "hello pod write");
            }
            let _ = stream.shutdown().await;
        });
    }
}

/// `config/demo` when run from the repository, else the built-in copy
/// written to a temporary directory.
pub fn manifests() -> io::Result<PathBuf> {
    let local = PathBuf::from("config/demo");
    if local.join("hello.yaml").is_file() {
        return Ok(local);
    }
    let dir = std::env::temp_dir().join(format!("svcproxy-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hello.yaml"), MANIFEST)?;
    Ok(dir)
}

/// The commands printed for the user to try.
pub fn instructions(healthz: &str, metrics: &str) -> String {
    format!(
        "svcproxy demo: three hello pods on {}, {}, {} behind Service default/hello-svc.\n\
         Try:\n  curl http://127.0.0.1:30165/        # NodePort on the node address\n  \
         curl http://127.96.54.119:9000/      # ClusterIP\n  \
         curl http://{healthz}/healthz\n  curl http://{metrics}/metrics\n\
         Run it again to see round robin; Ctrl-C to stop.\n",
        PODS[0], PODS[1], PODS[2]
    )
}
