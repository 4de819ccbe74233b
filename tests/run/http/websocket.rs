//! WebSocket through the HTTP mode, tungstenite on both sides: the
//! upgrade request is balanced like any other request, then the session
//! is tunnelled both ways, frames whole and in order, to a clean close.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt as _;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::service;
use crate::support::grpc::runtime;
use crate::support::manifests::write_by_rename;
use crate::support::net::{eventually, fresh_ip, refuses};
use crate::support::proxy::Proxy;
use crate::support::websocket::{Client, WebSocketPod, connect, next};

fn pods(names: &[&str]) -> Vec<WebSocketPod> {
    names.iter().map(|n| WebSocketPod::start(fresh_ip(), n)).collect()
}

/// Starts the proxy in front of `pods` (an `appProtocol: http` port) and
/// waits until a WebSocket handshake through it succeeds (a plain GET
/// would not do: a WebSocket pod refuses it).
fn serving(rt: &Runtime, pods: &[WebSocketPod]) -> (Proxy, SocketAddr, String) {
    let (frontend, manifest) = service("http", &pods.iter().map(|p| p.addr).collect::<Vec<_>>());
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| rt.block_on(connect(frontend)).map_err(std::io::Error::other));
    (proxy, frontend, manifest)
}

/// One WebSocket session through the ClusterIP: the pod's welcome,
/// sent before the client says anything, arrives; 100 text messages come
/// back in order, then a 1 MiB binary message comes back whole, then the
/// close handshake completes on both sides.
#[test]
fn a_websocket_echoes_100_messages_in_order_then_1_mib_then_closes_cleanly() {
    let pods = pods(&["a"]);
    let rt = runtime();
    let (mut proxy, frontend, _) = serving(&rt, &pods);
    let closed_before = pods[0].closed_cleanly();
    rt.block_on(async {
        let (mut client, pod) = connect(frontend).await.expect("the handshake");
        assert_eq!(pod, "a");
        for i in 0..100 {
            client.send(Message::text(format!("message {i:03}"))).await.expect("send");
        }
        for i in 0..100 {
            let echo = next(&mut client).await.expect("an echo");
            assert_eq!(echo, Message::text(format!("message {i:03}")));
        }

        let big: Vec<u8> =
            (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        client.send(Message::binary(big.clone())).await.expect("send 1 MiB");
        match next(&mut client).await.expect("the 1 MiB echo") {
            Message::Binary(echo) => {
                assert_eq!(echo.len(), big.len());
                assert!(echo[..] == big[..], "the 1 MiB came back changed");
            }
            other => panic!("not a binary message: {other:?}"),
        }

        close(&mut client).await;
    });
    // The pod saw the client's Close and answered it.
    eventually("the pod's side of the close", Duration::from_secs(5), || {
        match pods[0].closed_cleanly() - closed_before {
            1 => Ok(()),
            n => Err(format!("{n} sessions closed cleanly")),
        }
    });
    proxy.assert_running();
}

/// The client's half of a clean close: its Close frame out, the pod's
/// Close frame back with the same code, then the end of the stream.
async fn close(client: &mut Client) {
    let frame = CloseFrame { code: CloseCode::Normal, reason: "done".into() };
    client.send(Message::Close(Some(frame))).await.expect("send Close");
    match next(client).await.expect("the pod's Close") {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("not a Close frame: {other:?}"),
    }
    let after = next(client).await;
    assert!(
        matches!(after, Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)),
        "{after:?}"
    );
}

/// WebSocket sessions opened one after another over two pods alternate
/// between them (round robin per request holds for the upgrade request),
/// and each open session keeps talking to its own pod.
#[test]
fn websocket_sessions_opened_one_after_another_alternate_between_pods() {
    let pods = pods(&["a", "b"]);
    let rt = runtime();
    let (mut proxy, frontend, _) = serving(&rt, &pods);
    rt.block_on(async {
        let mut sessions = Vec::new();
        for _ in 0..4 {
            sessions.push(connect(frontend).await.expect("the handshake"));
        }
        let names: Vec<&str> = sessions.iter().map(|(_, pod)| pod.as_str()).collect();
        assert!(names == ["a", "b", "a", "b"] || names == ["b", "a", "b", "a"], "{names:?}");
        // All four open at once, each echoing its own words.
        for (i, (client, _)) in sessions.iter_mut().enumerate() {
            client.send(Message::binary(Bytes::from(vec![i as u8; 100]))).await.expect("send");
        }
        for (i, (client, _)) in sessions.iter_mut().enumerate() {
            let echo = next(client).await.expect("an echo");
            assert_eq!(echo, Message::binary(Bytes::from(vec![i as u8; 100])));
        }
        for (client, _) in &mut sessions {
            close(client).await;
        }
    });
    proxy.assert_running();
}

/// A live WebSocket session outlives its pod's removal from the Snapshot
/// (live connections are never cut by a swap): once the change is
/// published new sessions go to the other pod, while the old one still
/// echoes and closes cleanly.
#[test]
fn a_websocket_session_outlives_its_pods_removal_from_the_service() {
    let pods = pods(&["a", "b"]);
    let rt = runtime();
    let (mut proxy, frontend, manifest) = serving(&rt, &pods);
    let (mut session, pod) = rt.block_on(connect(frontend)).expect("the handshake");
    let gone = if pod == "a" { 0 } else { 1 };
    // The same Service and ClusterIP, the slice of the session's pod cut.
    let slice = format!("name: web-{gone},");
    let without: Vec<&str> = manifest.split("---\n").filter(|d| !d.contains(&slice)).collect();
    let generation = proxy.metric("svcproxy_routing_generation");
    write_by_rename(&proxy.manifest(), &without.join("---\n"));
    proxy.wait_metric("svcproxy_routing_generation", Duration::from_secs(5), |g| g > generation);
    rt.block_on(async {
        for _ in 0..4 {
            let (mut other, to) = connect(frontend).await.expect("a new session");
            assert_ne!(to, pod, "a new session went to the removed pod");
            close(&mut other).await;
        }
        for i in 0..10 {
            session.send(Message::text(format!("still here {i}"))).await.expect("send");
            let echo = next(&mut session).await;
            assert_eq!(
                echo.expect("an echo from the removed pod"),
                Message::text(format!("still here {i}"))
            );
        }
        close(&mut session).await;
    });
    proxy.assert_running();
}

/// SIGTERM's drain counts a WebSocket session as a live connection
/// (live connections finish, up to `--drain-timeout`): the
/// listener closes at once, the open session still echoes and closes
/// cleanly, and then the proxy exits 0.
#[test]
fn sigterm_lets_an_open_websocket_session_finish() {
    let pods = pods(&["a"]);
    let rt = runtime();
    let (mut proxy, frontend, _) = serving(&rt, &pods);
    let (mut session, _) = rt.block_on(connect(frontend)).expect("the handshake");
    proxy.signal("TERM");
    eventually("the listener closed", Duration::from_secs(2), || {
        if refuses(frontend) { Ok(()) } else { Err("still accepting") }
    });
    rt.block_on(async {
        for i in 0..10 {
            session.send(Message::text(format!("draining {i}"))).await.expect("send");
            let echo = next(&mut session)
                .await
                .unwrap_or_else(|e| panic!("echo {i}: {e}\n{}", proxy.log()));
            assert_eq!(echo, Message::text(format!("draining {i}")));
        }
        close(&mut session).await;
    });
    // The client's end of the TCP connection: the tunnel ends with it.
    drop(session);
    let status = proxy.wait_exit(Duration::from_secs(5)).expect("exited once the session ended");
    assert!(status.success(), "{status}\n{}", proxy.log());
}

/// SIGTERM's drain is bounded for WebSocket sessions too: a session still
/// open when `--drain-timeout` runs out echoes after the signal, then is
/// cut at the timeout, the proxy exiting 0 without waiting for it.
#[test]
fn a_websocket_session_open_at_the_drain_timeout_is_cut() {
    let pods = pods(&["a"]);
    let rt = runtime();
    let (frontend, manifest) = service("http", &[pods[0].addr]);
    let mut proxy = Proxy::start(&manifest, &["--drain-timeout", "1s"]);
    let (mut session, _) =
        proxy.wait_ready(|| rt.block_on(connect(frontend)).map_err(std::io::Error::other));
    proxy.signal("TERM");
    let signalled = std::time::Instant::now();
    rt.block_on(async {
        session.send(Message::text("draining")).await.expect("send");
        let echo =
            next(&mut session).await.unwrap_or_else(|e| panic!("the echo: {e}\n{}", proxy.log()));
        assert_eq!(echo, Message::text("draining"));
    });
    let status = proxy.wait_exit(Duration::from_secs(4)).expect("exited at the drain timeout");
    let waited = signalled.elapsed();
    assert!(status.success(), "{status}\n{}", proxy.log());
    assert!(waited >= Duration::from_millis(900), "exited after {waited:?}, before the timeout");
    let end = rt.block_on(next(&mut session));
    assert!(end.is_err() || matches!(end, Ok(Message::Close(_))), "{end:?}");
}
