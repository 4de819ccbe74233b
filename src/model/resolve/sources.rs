//! What the [`Catalog`] holds for one Service, in resolution order: for
//! saying why a Service has no endpoints (`svcproxy check`), never for
//! routing, so the control loop's resolution does none of this work.

use std::sync::Arc;

use super::super::Protocol;
use super::super::endpoints::Subset;
use super::super::service::Service;
use super::{Catalog, Slices, selects};

/// The source a Service's endpoints come from, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sources {
    /// Its EndpointSlices, the first source that exists.
    Slices(Listed),
    /// Its Endpoints object, when no EndpointSlice names it.
    Endpoints(Listed),
    /// Neither: the Pods its selector matches.
    Pods(Selected),
    /// Neither, and no selector: nothing can give it endpoints.
    Nothing,
}

/// What EndpointSlices or an Endpoints object list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Addresses over every slice or subset.
    pub addresses: usize,
    /// Each port name and protocol, once, in the order first listed.
    pub ports: Vec<(Arc<str>, Protocol)>,
}

/// The Pods a selector picks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// Pods in the Service's namespace whose labels match.
    pub matched: usize,
    /// Of them, those with a `status.podIP`.
    pub with_ip: usize,
}

// === impl Catalog ===

impl Catalog<'_> {
    /// What the first source that exists for `service` holds.
    pub fn sources(&self, service: &Service) -> Sources {
        if let Some(slices) = self.slices.get(&service.id) {
            return Sources::Slices(match slices {
                Slices::One(subset) => Listed::of(std::iter::once(*subset)),
                Slices::Many(all) => Listed::of(all.iter().copied()),
            });
        }
        if let Some(set) = self.endpoints.get(&service.id) {
            return Sources::Endpoints(Listed::of(set.iter()));
        }
        let Some(selector) = &service.selector else {
            return Sources::Nothing;
        };
        let pods = self.pods.get(&*service.id.namespace).map(Vec::as_slice).unwrap_or_default();
        let matched = pods.iter().filter(|pod| selects(selector, pod));
        Sources::Pods(Selected {
            matched: matched.clone().count(),
            with_ip: matched.filter(|pod| !pod.addresses.is_empty()).count(),
        })
    }
}

// === impl Listed ===

impl Listed {
    fn of<'s>(subsets: impl Iterator<Item = &'s Subset>) -> Self {
        let mut listed = Listed { addresses: 0, ports: Vec::new() };
        for subset in subsets {
            listed.addresses += subset.addresses.len();
            for port in &subset.ports {
                // A Service has few ports and so do its slices: a scan is
                // cheaper than a set.
                let key = (port.name.clone(), port.protocol);
                if !listed.ports.contains(&key) {
                    listed.ports.push(key);
                }
            }
        }
        listed
    }
}
