//! gRPC through the HTTP mode, tonic on both sides: a client's channel is
//! one HTTP/2 connection, yet its calls are balanced one by one over the
//! pods of an `appProtocol: grpc` port; streams, trailers and error
//! statuses reach the client as the pod sent them, and the proxy's own
//! answer is a status the client can read.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::runtime::Runtime;
use tonic::Code;
use tonic::transport::Channel;

use super::{service, tally};
use crate::support::grpc::{
    EchoClient, FAILURE_CODE, FAILURE_DETAIL, FAILURE_MESSAGE, FAILURE_REASON, GrpcPod, Hello,
    channel, hello, runtime,
};
use crate::support::net::{eventually, fresh_ip, refuses};
use crate::support::proxy::Proxy;

fn pods(names: &[&str]) -> Vec<GrpcPod> {
    names.iter().map(|n| GrpcPod::start(fresh_ip(), n)).collect()
}

/// A Service whose one port is `appProtocol: grpc`, in front of `pods`.
fn grpc_service(pods: &[GrpcPod]) -> (SocketAddr, String) {
    service("grpc", &pods.iter().map(|p| p.addr).collect::<Vec<_>>())
}

/// Starts the proxy and waits until a channel to `frontend` connects (the
/// proxy listens once its Snapshot has the port); then a first `Say`
/// must be answered by a pod, or the test fails at once with the status
/// and the proxy's log. The channel that made it.
fn serving(rt: &Runtime, manifest: &str, frontend: SocketAddr) -> (Proxy, Channel) {
    let mut proxy = Proxy::start(manifest, &[]);
    let channel =
        proxy.wait_ready(|| rt.block_on(channel(frontend)).map_err(std::io::Error::other));
    let first = rt.block_on(EchoClient::new(channel.clone()).say(hello("ready?")));
    if let Err(status) = first {
        panic!("the first call through the proxy failed: {status:?}\n{}", proxy.log());
    }
    (proxy, channel)
}

/// The point of the HTTP mode for gRPC: 30 unary calls on ONE channel
/// (one HTTP/2 connection to the ClusterIP) are spread 10/10/10 over the
/// three pods, where a per-connection balancer sends all 30 to one.
#[test]
fn thirty_unary_calls_on_one_channel_spread_10_10_10() {
    let pods = pods(&["a", "b", "c"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (mut proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    let replies: Vec<String> = rt.block_on(async {
        let mut replies = Vec::new();
        for i in 0..30 {
            let text = format!("call {i}");
            let reply = client.say(hello(&text)).await;
            let reply = reply.unwrap_or_else(|s| panic!("call {i}: {s:?}")).into_inner();
            assert_eq!(reply.text, text);
            replies.push(reply.pod);
        }
        replies
    });
    let counts = tally(replies.iter().map(String::as_str));
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10], "{counts:?}");
    proxy.assert_running();
}

/// 300 calls started at once on one channel (more than the 100 streams
/// the proxy lets a client connection have open at a time by default)
/// all succeed, spread 100/100/100: one pick per call, whatever order
/// they arrive in and however many are in flight.
#[test]
fn three_hundred_concurrent_calls_on_one_channel_spread_100_100_100() {
    let pods = pods(&["a", "b", "c"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (mut proxy, channel) = serving(&rt, &manifest, frontend);
    let calls: Vec<_> = (0..300)
        .map(|i| {
            let mut client = EchoClient::new(channel.clone());
            rt.spawn(async move { client.say(hello(&format!("call {i}"))).await })
        })
        .collect();
    let replies: Vec<String> = rt.block_on(async {
        let mut replies = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let reply = within(call).await.expect("an answer in time").expect("the task");
            let reply = reply.unwrap_or_else(|s| panic!("call {i}: {s:?}")).into_inner();
            assert_eq!(reply.text, format!("call {i}"));
            replies.push(reply.pod);
        }
        replies
    });
    let counts = tally(replies.iter().map(String::as_str));
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [100, 100, 100], "{counts:?}");
    proxy.assert_running();
}

/// A 3 MiB request and its 3 MiB echo (tonic's limit is 4 MiB) pass
/// whole: HTTP/2 flow control holds both ways, from the client to the
/// proxy to the pod and back, far past the 64 KiB initial windows.
#[test]
fn a_3_mib_request_and_its_3_mib_reply_pass_whole() {
    let pods = pods(&["a", "b", "c"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (_proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    let padding: Vec<u8> =
        (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let request = Hello { padding: padding.clone(), ..hello("big") };
    let reply = rt.block_on(within(client.say(request))).expect("an answer in time");
    let reply = reply.expect("the call").into_inner();
    assert_eq!(reply.padding.len(), padding.len());
    assert!(reply.padding == padding, "the 3 MiB came back changed");
}

/// A server stream of 1,000 replies (1 KiB each, so HTTP/2 flow control
/// comes into play both on the client's connection and on the pod's)
/// arrives whole and in order from one pod, and ends with the pod's
/// trailers: `grpc-status: 0`.
#[test]
fn a_server_stream_arrives_in_order_and_ends_with_status_ok_in_trailers() {
    let pods = pods(&["a", "b", "c"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (_proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    rt.block_on(async {
        let request = Hello { count: 1000, size: 1024, ..hello("stream") };
        let mut stream = client.count(request).await.expect("the stream opens").into_inner();
        let mut replies = Vec::new();
        while let Some(reply) = stream.message().await.expect("a message or the end") {
            replies.push(reply);
        }
        let seqs: Vec<u32> = replies.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
        assert!(replies.iter().all(|r| r.pod == replies[0].pod), "one call, one pod");
        assert!(
            replies.iter().all(|r| r.padding == vec![r.seq as u8; 1024]),
            "a reply came back changed"
        );
        let trailers = stream.trailers().await.expect("trailers").expect("the pod's trailers");
        let status = trailers.get("grpc-status").and_then(|v| v.to_str().ok());
        assert_eq!(status, Some("0"), "{trailers:?}");
    });
}

/// A bidirectional stream is a conversation: its response head comes
/// back before the client has sent anything, then 100 requests go one at
/// a time, each only once the reply to the last has come back (a proxy
/// that held the request body, or the response, until the other side
/// ended would hang here), and the call ends OK when the client ends its
/// side.
#[test]
fn a_bidirectional_stream_answers_each_message_before_the_next_is_sent() {
    let pods = pods(&["a", "b", "c"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (_proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    rt.block_on(async {
        let (turns, hellos) = tokio::sync::mpsc::channel(1);
        let hellos = futures_util::stream::unfold(hellos, |mut hellos| async move {
            hellos.recv().await.map(|hello| (hello, hellos))
        });
        let call = within(client.chat(hellos)).await.expect("the response head");
        let mut replies = call.expect("the call opens").into_inner();
        for turn in 0..100 {
            let text = format!("turn {turn}");
            let hello = Hello { count: turn, size: 1024, ..hello(&text) };
            turns.send(hello).await.expect("the call takes the next message");
            let reply = within(replies.message()).await.expect("the reply to this turn");
            let reply = reply.expect("a message").expect("not the end yet");
            assert_eq!((reply.seq, reply.text.as_str()), (turn, text.as_str()));
            assert_eq!(reply.padding, vec![turn as u8; 1024]);
        }
        drop(turns);
        let end = within(replies.message()).await.expect("the end of the call");
        assert!(end.expect("no error").is_none(), "no reply after the last turn");
        let trailers = replies.trailers().await.expect("trailers").expect("the pod's trailers");
        let status = trailers.get("grpc-status").and_then(|v| v.to_str().ok());
        assert_eq!(status, Some("0"), "{trailers:?}");
    });
}

/// SIGTERM during a bidirectional stream: the listener closes at once,
/// the call in flight goes on (its HTTP/2 connection gets GOAWAY, and
/// ends with its last stream) until the client ends it with status OK,
/// and then the proxy exits 0.
#[test]
fn sigterm_lets_a_grpc_stream_in_flight_finish() {
    let pods = pods(&["a"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (mut proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    let (turns, hellos) = tokio::sync::mpsc::channel(1);
    let hellos = futures_util::stream::unfold(hellos, |mut hellos| async move {
        hellos.recv().await.map(|hello| (hello, hellos))
    });
    let call = rt.block_on(within(client.chat(hellos))).expect("the response head");
    let mut replies = call.expect("the call opens").into_inner();
    proxy.signal("TERM");
    eventually("the listener closed", Duration::from_secs(2), || {
        if refuses(frontend) { Ok(()) } else { Err("still accepting") }
    });
    rt.block_on(async {
        for turn in 0..10 {
            turns.send(Hello { count: turn, ..hello("draining") }).await.expect("the next turn");
            let reply = within(replies.message()).await.expect("the reply to this turn");
            let reply = reply.unwrap_or_else(|s| panic!("turn {turn}: {s:?}\n{}", proxy.log()));
            assert_eq!(reply.expect("not the end yet").seq, turn);
        }
        drop(turns);
        let end = within(replies.message()).await.expect("the end of the call");
        assert!(end.expect("no error").is_none(), "no reply after the last turn");
    });
    let status = proxy.wait_exit(Duration::from_secs(5)).expect("exited once the call ended");
    assert!(status.success(), "{status}\n{}", proxy.log());
}

/// A client that gives up on a server stream midway (drops it, which
/// resets its HTTP/2 stream) cancels the call at the pod too: the pod's
/// endless stream is dropped, not left producing into a proxy nobody
/// reads from.
#[test]
fn a_stream_the_client_cancels_is_cancelled_at_the_pod() {
    let pods = pods(&["a"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (_proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    rt.block_on(async {
        let endless = Hello { count: u32::MAX, size: 1024, ..hello("forever") };
        let call = within(client.count(endless)).await.expect("the response head");
        let mut stream = call.expect("the stream opens").into_inner();
        for seq in 0..10 {
            let reply = within(stream.message()).await.expect("a reply in time");
            assert_eq!(reply.expect("a message").expect("not the end").seq, seq);
        }
        assert_eq!(pods[0].live_streams(), 1);
        drop(stream);
    });
    eventually("the pod's stream dropped", Duration::from_secs(5), || {
        match pods[0].live_streams() {
            0 => Ok(()),
            n => Err(format!("{n} streams still live at the pod")),
        }
    });
    // The channel is still good for the next call.
    let reply = rt.block_on(client.say(hello("still there?"))).expect("a call after the cancel");
    assert_eq!(reply.into_inner().pod, "a");
}

/// `future`'s output within 5 s: a stuck stream fails the test, not the
/// suite's patience.
async fn within<F: std::future::Future>(future: F) -> Result<F::Output, &'static str> {
    tokio::time::timeout(Duration::from_secs(5), future).await.map_err(|_| "nothing within 5 s")
}

/// An error status from the pod reaches the client intact, its code,
/// message and metadata (ASCII and binary): both as a trailers-only
/// response (a unary call failing at once) and in trailers after three
/// messages of a stream.
#[test]
fn an_error_status_from_the_pod_reaches_the_client_with_its_metadata() {
    let pods = pods(&["a", "b", "c"]);
    let (frontend, manifest) = grpc_service(&pods);
    let rt = runtime();
    let (_proxy, channel) = serving(&rt, &manifest, frontend);
    let mut client = EchoClient::new(channel);
    rt.block_on(async {
        let failing = Hello { fail: true, ..hello("fail") };
        let status = client.say(failing.clone()).await.expect_err("a failed call");
        assert_failure(&status);

        let request = Hello { count: 3, size: 16, ..failing };
        let mut stream = client.count(request).await.expect("the stream opens").into_inner();
        for seq in 0..3 {
            let reply = stream.message().await.expect("a message").expect("not the end yet");
            assert_eq!(reply.seq, seq);
        }
        let status = stream.message().await.expect_err("the stream's failure");
        assert_failure(&status);
    });
}

/// The pod's [`crate::support::grpc::failure`], as the client got it.
fn assert_failure(status: &tonic::Status) {
    assert_eq!(status.code(), FAILURE_CODE, "{status:?}");
    assert_eq!(status.message(), FAILURE_MESSAGE, "{status:?}");
    let (key, value) = FAILURE_REASON;
    let reason = status.metadata().get(key).and_then(|v| v.to_str().ok());
    assert_eq!(reason, Some(value), "{status:?}");
    let (key, value) = FAILURE_DETAIL;
    let detail = status.metadata().get_bin(key).and_then(|v| v.to_bytes().ok());
    assert_eq!(detail.as_deref(), Some(value), "{status:?}");
}

/// With no endpoint behind its port, a tonic client gets what it can act
/// on: `Code::Unavailable` with a message naming the Service port (the
/// proxy's trailers-only answer), not a transport or protocol error.
#[test]
fn a_tonic_client_gets_unavailable_from_a_port_with_no_endpoints() {
    let (frontend, manifest) = service("grpc", &[]);
    let rt = runtime();
    let mut proxy = Proxy::start(&manifest, &[]);
    // Until the proxy listens, connecting fails (a transport error).
    let channel =
        proxy.wait_ready(|| rt.block_on(channel(frontend)).map_err(std::io::Error::other));
    let mut client = EchoClient::new(channel);
    for _ in 0..3 {
        let status = rt.block_on(client.say(hello("anyone?"))).expect_err("no pod to answer");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("default/web") && status.message().contains("no endpoint"),
            "{status:?}"
        );
        assert!(std::error::Error::source(&status).is_none(), "not a transport error: {status:?}");
    }
    proxy.assert_running();
}
