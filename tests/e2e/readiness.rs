//! Which endpoints take traffic: not-ready ones are skipped; serving and
//! terminating ones (`serving` unset counts as serving) are the fallback
//! when none is ready, terminating and not serving ones never;
//! `publishNotReadyAddresses` serves unready and terminating Pods and
//! not-ready slice endpoints; an evicted Pod is no endpoint.

use crate::jig::{edit, servers, start, wait_rejected, wait_serving};
use crate::support::endpoint::Endpoint;
use crate::support::manifests::{Ep, PORT, PodState, Svc, pod_of, slices};
use crate::support::net::{addr, fresh_ip};

/// "should create endpoints for unready pods" and "should be able to
/// connect to terminating and unready endpoints if PublishNotReadyAddresses
/// is true"; "should not be able to connect to terminating and unready
/// endpoints if PublishNotReadyAddresses is false"; "should be rejected for
/// evicted pods (no endpoints)".
#[test]
fn publish_not_ready_addresses_serves_unready_and_terminating_pods() {
    let ip = fresh_ip();
    let (unready, dying) =
        (Endpoint::name(fresh_ip(), "unready"), Endpoint::name(fresh_ip(), "dying"));
    let evicted = Endpoint::name(fresh_ip(), "evicted");
    let pods = pod_of("unready", "pnr", &unready, PodState::Unready)
        + &pod_of("dying", "pnr", &dying, PodState::TerminatingUnready)
        + &pod_of("evicted", "pnr", &evicted, PodState::Evicted);
    let svc = Svc::new("pnr", ip);
    let publish = svc.clone().spec("  publishNotReadyAddresses: true\n").yaml() + &pods;
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.yaml() + &pods), &[]);
    wait_rejected(frontend);

    edit(&mut proxy, &publish);
    wait_serving(frontend, &["unready", "dying"]);
    edit(&mut proxy, &(Svc::new("pnr", ip).yaml() + &pods));
    wait_rejected(frontend);
}

/// Not-ready endpoints take no traffic while a ready one exists; with
/// none ready, the serving and terminating ones do (kube-proxy's
/// fallback, for `internalTrafficPolicy: Cluster`); terminating and not
/// serving ones never do.
#[test]
fn not_ready_endpoints_are_skipped_and_terminating_serving_ones_are_the_fallback() {
    let ip = fresh_ip();
    let eps = servers(&["ready", "unready", "draining"]);
    let svc = Svc::new("fallback", ip).no_selector().yaml();
    let (ready, unready, draining) = (Ep::ready(&eps[0]), Ep::ready(&eps[1]), Ep::ready(&eps[2]));
    let unready = unready.conditions(Some(false), Some(false), Some(false));
    let draining = draining.conditions(Some(false), Some(true), Some(true));
    let frontend = addr(ip, PORT);
    let mut proxy = start(&(svc.clone() + &slices("fallback", &[ready, unready, draining])), &[]);
    wait_serving(frontend, &["ready"]);

    edit(&mut proxy, &(svc.clone() + &slices("fallback", &[unready, draining])));
    wait_serving(frontend, &["draining"]);
    let gone = draining.conditions(Some(false), Some(false), Some(true));
    edit(&mut proxy, &(svc.clone() + &slices("fallback", &[unready, gone])));
    wait_rejected(frontend);
    // Pods say the same: a Pod being deleted whose readiness still passes.
    let pods = pod_of("ready", "fallback", &eps[0], PodState::Unready)
        + &pod_of("draining", "fallback", &eps[2], PodState::TerminatingServing);
    edit(&mut proxy, &(Svc::new("fallback", ip).yaml() + &pods));
    wait_serving(frontend, &["draining"]);
}

/// An EndpointSlice endpoint that is terminating, not ready, and says
/// nothing of `serving`: the API (`serving`: "a nil value should be
/// interpreted as true") and kube-proxy (`Serving == nil || *Serving`)
/// count it as serving, so it is the fallback when none is ready.
#[test]
fn a_terminating_slice_endpoint_with_serving_unset_is_the_fallback() {
    let ip = fresh_ip();
    let eps = servers(&["unset-serving"]);
    let svc = Svc::new("unset-serving", ip).no_selector().yaml();
    let ep = Ep::ready(&eps[0]).conditions(Some(false), None, Some(true));
    let _proxy = start(&(svc + &slices("unset-serving", &[ep])), &[]);
    wait_serving(addr(ip, PORT), &["unset-serving"]);
}

/// DESIGN §3: "`publishNotReadyAddresses` includes not-ready ones", said
/// of every endpoint source; here an EndpointSlice lists a not-ready
/// endpoint of a Service that publishes not-ready addresses.
#[test]
fn publish_not_ready_addresses_applies_to_endpoint_slices_too() {
    let ip = fresh_ip();
    let eps = servers(&["slice-unready"]);
    let svc =
        Svc::new("pnr-slice", ip).no_selector().spec("  publishNotReadyAddresses: true\n").yaml();
    let ep = Ep::ready(&eps[0]).conditions(Some(false), Some(false), Some(false));
    let _proxy = start(&(svc + &slices("pnr-slice", &[ep])), &[]);
    wait_serving(addr(ip, PORT), &["slice-unready"]);
}
