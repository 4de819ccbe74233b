//! One kind's watcher: a paginated list, then a watch from its
//! resourceVersion (bookmarks asked for), a relist at once when the watch
//! expires (410 Gone), a retry with client-go's backoff when the API server
//! cannot be reached or refuses.

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher as _, Hasher as _};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tower::util::MapResponseLayer;

use super::{Error, Shared};
use crate::manifest::{Kind, Object, Origin, Resource};

/// The annotation `kubectl apply` writes: a whole second copy of the
/// object, never read here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A kind the API source watches.
pub trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const KIND: Kind;

    fn resource(self) -> Resource;
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;

    fn resource(self) -> Resource {
        Resource::Service(Arc::new(self))
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;

    fn resource(self) -> Resource {
        Resource::EndpointSlice(Arc::new(self.into()))
    }
}

impl Watched for Node {
    const KIND: Kind = Kind::Node;

    fn resource(self) -> Resource {
        Resource::Node(Arc::new(self))
    }
}

/// A client for one kind's watcher. Each response it gets tells `shared`
/// the kind's watch is established: a watch started again after a dropped
/// connection yields no event until something changes.
pub fn client<K: Watched>(
    config: kube::Config,
    shared: &Arc<Shared>,
) -> Result<kube::Client, Error> {
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|e| Error::Client(e.to_string()))?;
    let shared = shared.clone();
    let layer = MapResponseLayer::new(move |response: hyper::Response<_>| {
        if response.status().is_success() {
            shared.connected(K::KIND);
        }
        response
    });
    Ok(builder.with_layer(&layer).build())
}

/// client-go's reflector backoff: 0.8 s doubling to 30 s, each delay
/// stretched by up to 100 % at random (so a cluster's nodes do not retry
/// in step), back to the start after 2 minutes without a failure.
#[derive(Debug)]
struct Backoff {
    failures: u32,
    last: Option<Instant>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(800);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
const BACKOFF_RESET: Duration = Duration::from_secs(120);

/// Lists and watches every `K` that `config` selects (in all namespaces,
/// for namespaced kinds) into `shared`, for as long as the daemon runs.
///
/// Not kube-rs's `default_backoff`: it starts again from its shortest
/// delay on every event, and the watcher yields one (`Init`) before each
/// list it tries, so a list that keeps failing would be retried every
/// 0.8 s forever. Here only an event that shows the API server answering
/// (a list completed, a watch event) starts it again.
pub async fn follow<K: Watched>(
    client: kube::Client,
    config: watcher::Config,
    shared: Arc<Shared>,
) {
    let api: kube::Api<K> = kube::Api::all(client);
    let mut events = pin!(watcher::watcher(api, config));
    let mut backoff = Backoff { failures: 0, last: None };
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_)) {
                    backoff.failures = 0;
                }
                shared.apply(K::KIND, object_event(event));
            }
            // The watch's resourceVersion is too old: relist now, as
            // client-go does; nothing failed.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                shared.expired(K::KIND);
            }
            Err(e) => {
                shared.failed(K::KIND, &e);
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

// === impl Backoff ===

impl Backoff {
    /// The delay before the next try.
    fn next(&mut self) -> Duration {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) > BACKOFF_RESET) {
            self.failures = 0;
        }
        self.last = Some(now);
        let base = BACKOFF_FIRST.saturating_mul(1 << self.failures.min(6)).min(BACKOFF_CAP);
        self.failures = self.failures.saturating_add(1);
        // A fresh random value per call, from the standard library's
        // randomly seeded hasher: no dependency for one number.
        let random = RandomState::new().build_hasher().finish();
        let stretch = (random % 1_000) as f64 / 1_000.0;
        base.mul_f64(1.0 + stretch)
    }
}

/// The event with its object as the model reads it.
fn object_event<K: Watched>(event: Event<K>) -> Event<Object> {
    match event {
        Event::Apply(o) => Event::Apply(object(o)),
        Event::Delete(o) => Event::Delete(object(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(object(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// `resource` without what the proxy never reads and the API server
/// writes at length: its managed fields and kubectl's last applied copy.
fn object<K: Watched>(mut resource: K) -> Object {
    let meta = resource.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
    let mut resource = resource.resource();
    if let Resource::Node(node) = &mut resource {
        // Of a Node the proxy reads its labels, deletion and taints; its
        // status (images, volumes, conditions) is most of it.
        if let Some(node) = Arc::get_mut(node) {
            node.status = None;
        }
    }
    Object::new(Origin::Api, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_0_8_s_to_30_s_stretched_by_up_to_100_percent() {
        let mut backoff = Backoff { failures: 0, last: None };
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next()).collect();
        let bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0];
        for (delay, base) in delays.iter().zip(bases) {
            let secs = delay.as_secs_f64();
            assert!(secs >= base && secs < 2.0 * base, "{delays:?}");
        }
    }
}
