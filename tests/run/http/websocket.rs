//! WebSocket through the HTTP mode, tungstenite on both sides: the
//! upgrade request is balanced like any other request, then the session
//! is tunnelled both ways, frames whole and in order, to a clean close.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::SinkExt as _;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::service;
use crate::support::grpc::runtime;
use crate::support::net::{eventually, fresh_ip};
use crate::support::proxy::Proxy;
use crate::support::websocket::{Client, WebSocketPod, connect, next};

fn pods(names: &[&str]) -> Vec<WebSocketPod> {
    names.iter().map(|n| WebSocketPod::start(fresh_ip(), n)).collect()
}

/// Starts the proxy in front of `pods` (an `appProtocol: http` port) and
/// waits until a WebSocket handshake through it succeeds (a plain GET
/// would not do: a WebSocket pod refuses it).
fn serving(rt: &Runtime, pods: &[WebSocketPod]) -> (Proxy, SocketAddr) {
    let (frontend, manifest) = service("http", &pods.iter().map(|p| p.addr).collect::<Vec<_>>());
    let mut proxy = Proxy::start(&manifest, &[]);
    proxy.wait_ready(|| rt.block_on(connect(frontend)).map_err(std::io::Error::other));
    (proxy, frontend)
}

/// One WebSocket session through the ClusterIP: the pod's welcome,
/// sent before the client says anything, arrives; 100 text messages come
/// back in order, then a 1 MiB binary message comes back whole, then the
/// close handshake completes on both sides.
#[test]
fn a_websocket_echoes_100_messages_in_order_then_1_mib_then_closes_cleanly() {
    let pods = pods(&["a"]);
    let rt = runtime();
    let (mut proxy, frontend) = serving(&rt, &pods);
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
    eventually("the pod's side of the close", std::time::Duration::from_secs(5), || {
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
    let (mut proxy, frontend) = serving(&rt, &pods);
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
