//! One kind's watcher: a paginated list, then a watch from its
//! resourceVersion (bookmarks asked for), a relist when the watch expires
//! (410 Gone), a reconnect with client-go's backoff (0.8 s doubling to
//! 30 s, jittered) when the API server cannot be reached.

use std::fmt::Debug;
use std::pin::pin;
use std::sync::Arc;

use futures_util::StreamExt as _;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt as _;
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
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
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
        Resource::EndpointSlice(Arc::new(self))
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

/// Lists and watches every `K` matching `selector`, in all namespaces,
/// into `shared`, for as long as the daemon runs.
pub async fn follow<K: Watched>(client: kube::Client, selector: String, shared: Arc<Shared>) {
    let api: kube::Api<K> = kube::Api::all(client);
    let config = watcher::Config::default().labels(&selector);
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => shared.apply(K::KIND, object_event(event)),
            Err(e) => shared.failed(K::KIND, &e),
        }
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
    Object::new(Origin::Api, resource.resource())
}
