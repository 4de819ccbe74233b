//! A rebuild is a transaction: a build that panics commits nothing, and
//! the next change is tried again from the state the last commit left.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::context::Splice;
use crate::table::{Frontend, Snapshot};

/// A Service `name` on the ClusterIP `ip` and a port free there now (the
/// unit tests' only listeners, on addresses of their own).
fn write_service(dir: &Path, name: &str, ip: Ipv4Addr) -> Frontend {
    let port = TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
         spec: {{clusterIP: {ip}, ports: [{{port: {port}}}]}}\n"
    );
    std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    Frontend { addr: SocketAddr::from((ip, port)), protocol: crate::model::Protocol::Tcp }
}

fn options() -> Options {
    Options {
        service_cidr: Options::DEFAULT_SERVICE_CIDR,
        node_name: "node-a".to_owned(),
        service_proxy_name: None,
        http_by_port_name: false,
    }
}

fn failures(ctx: &Context) -> u64 {
    ctx.metrics.config_reloads.with_label_values(&["failure"]).get()
}

#[tokio::test]
async fn a_build_that_panics_commits_nothing_and_the_next_change_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let web = write_service(dir.path(), "web", Ipv4Addr::new(127, 77, 0, 1));
    let ctx = Arc::new(Context::new(Duration::from_secs(1), Splice::Auto).unwrap());
    let files = Files::new(vec![dir.path().to_owned()]);
    let mut control = Control::new(files, options(), vec![Ipv4Addr::UNSPECIFIED.into()]);
    let first = control.publish(&ctx).await.unwrap().snapshot;
    assert_eq!((first.generation, first.frontends()), (1, vec![web]));

    let api = write_service(dir.path(), "api", Ipv4Addr::new(127, 77, 0, 2));
    control.inject_fault(true);
    let error = control.publish(&ctx).await.unwrap_err();
    assert!(matches!(&error, Error::Panicked(cause) if cause.contains("fault")), "{error}");
    // The published Snapshot, its listeners and what the sources held stay.
    assert!(Arc::ptr_eq(&ctx.table.load_full(), &first));
    assert_eq!(control.listeners.len(), 1);
    let state = control.state.as_ref().unwrap();
    assert_eq!(state.files.objects().count(), 1, "the failed read is not committed");
    assert_eq!(failures(&ctx), 1, "the failure is counted");
    let api_series = "service=\"api\"";
    assert!(!ctx.metrics.render().contains(api_series), "a dropped build exports nothing");

    control.inject_fault(false);
    let next = control.publish(&ctx).await.unwrap().snapshot;
    assert_eq!(next.generation, 2);
    let mut both = vec![web, api];
    both.sort();
    assert_eq!(next.frontends(), both);
    assert!(Arc::ptr_eq(&ctx.table.load_full(), &next));
    assert_eq!(control.listeners.len(), 2);
    assert_eq!(failures(&ctx), 1);
    assert!(ctx.metrics.render().contains(api_series));
}

#[tokio::test]
async fn a_first_build_that_panics_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_service(dir.path(), "web", Ipv4Addr::new(127, 77, 0, 1));
    let ctx = Arc::new(Context::new(Duration::from_secs(1), Splice::Auto).unwrap());
    let files = Files::new(vec![dir.path().to_owned()]);
    let mut control = Control::new(files, options(), vec![Ipv4Addr::UNSPECIFIED.into()]);
    control.inject_fault(true);
    assert!(control.publish(&ctx).await.is_err());
    assert_eq!(ctx.table.load().generation, Snapshot::default().generation);
    assert!(control.listeners.is_empty());
}

#[tokio::test]
async fn a_control_loop_without_listeners_publishes_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let web = write_service(dir.path(), "web", Ipv4Addr::new(127, 77, 0, 3));
    let ctx = Arc::new(Context::new(Duration::from_secs(1), Splice::Auto).unwrap());
    let files = Files::new(vec![dir.path().to_owned()]);
    let control = Control::new(files, options(), vec![Ipv4Addr::UNSPECIFIED.into()]);
    let mut control = control.without_listeners();
    let snapshot = control.publish(&ctx).await.unwrap().snapshot;
    assert_eq!(snapshot.frontends(), vec![web]);
    assert!(Arc::ptr_eq(&ctx.table.load_full(), &snapshot));
    assert!(control.listeners.is_empty());
}
