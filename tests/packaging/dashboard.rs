//! `docker/grafana/dashboard.json`: every metric it queries is one svcproxy
//! exports, it shows what issue 5 asks for, it imports with a Prometheus
//! datasource, and its PromQL parses.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::support::tools::{self, run_tool, shown};
use crate::{EXPORTED, HISTOGRAMS, docker, read};

/// What the dashboard must show: some panel queries each of these
/// families.
const MUST_QUERY: &[&str] = &[
    "svcproxy_connections_total",
    "svcproxy_connections_active",
    "svcproxy_received_bytes_total",
    "svcproxy_sent_bytes_total",
    "svcproxy_endpoint_connections_total",
    "svcproxy_endpoint_connect_errors_total",
    "svcproxy_rejected_connections_total",
    "svcproxy_connection_duration_seconds",
    "svcproxy_routing_generation",
    "svcproxy_services",
    "svcproxy_endpoints",
    "svcproxy_config_invalid_objects",
    "svcproxy_config_reloads_total",
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "svcproxy_udp_datagrams_total",
    "svcproxy_udp_flows_active",
    "svcproxy_udp_dropped_total",
    "svcproxy_api_up",
    "svcproxy_api_watch_events_total",
    "svcproxy_api_relists_total",
    "kubeproxy_network_programming_duration_seconds",
];

/// The datasource every panel and query uses: the import input, which is
/// also a templating variable.
const DATASOURCE: &str = "${DS_PROMETHEUS}";

fn dashboard() -> Value {
    let path = docker("grafana/dashboard.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL string of a dashboard: targets' `expr`, and the templating
/// queries (`definition`, `query` as a string or `{query: ...}`).
fn queries(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, key: Option<&str>, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, Some(k), out)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, out)),
            Value::String(s) if matches!(key, Some("expr" | "definition" | "query")) => {
                out.push(s.clone());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, None, &mut out);
    out
}

/// The svcproxy and kube-proxy metric names in a PromQL expression, with
/// the `_bucket` / `_sum` / `_count` suffix of a known histogram removed.
fn metric_names(expr: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = expr;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let starts = previous.is_none_or(|p| !is_ident(p));
        if starts && (rest.starts_with("svcproxy_") || rest.starts_with("kubeproxy_")) {
            let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            let name = &rest[..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|base| HISTOGRAMS.contains(base))
                .unwrap_or(name);
            names.push(base.to_owned());
            previous = name.chars().last();
            rest = &rest[end..];
            continue;
        }
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    let expr = "histogram_quantile(0.99, sum by (le) (rate(\
                svcproxy_connection_duration_seconds_bucket{x=\"y\"}[5m]))) \
                / svcproxy_connections_total + my_svcproxy_x \
                + time() - kubeproxy_sync_proxy_rules_last_timestamp_seconds";
    assert_eq!(
        metric_names(expr),
        [
            "svcproxy_connection_duration_seconds",
            "svcproxy_connections_total",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
        ]
    );
    // Not a histogram: the suffix stays, and the name is then unknown.
    assert_eq!(metric_names("svcproxy_services_count"), ["svcproxy_services_count"]);
}

#[test]
fn dashboard_queries_only_metrics_svcproxy_exports() {
    let queries = queries(&dashboard());
    assert!(queries.len() >= MUST_QUERY.len(), "too few queries: {queries:#?}");
    let mut queried = BTreeSet::new();
    for query in &queries {
        for name in metric_names(query) {
            assert!(
                EXPORTED.contains(&name.as_str()),
                "the dashboard queries {name}, which svcproxy does not export: {query}"
            );
            queried.insert(name);
        }
    }
    let missing: Vec<&&str> = MUST_QUERY.iter().filter(|n| !queried.contains(**n)).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// Every panel, nested ones (in collapsed rows) included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut pending: Vec<&Value> = dashboard["panels"].as_array().expect("panels").iter().collect();
    while let Some(panel) = pending.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            pending.extend(nested);
        }
        out.push(panel);
    }
    out
}

#[test]
fn dashboard_imports_with_a_prometheus_datasource_and_filters() {
    let dashboard = dashboard();
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let inputs = dashboard["__inputs"].as_array().expect("__inputs, for Import");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "a DS_PROMETHEUS datasource input: {inputs:?}"
    );
    assert_variables(&dashboard);

    let mut ids = BTreeSet::new();
    let mut with_queries = 0;
    for panel in panels(&dashboard) {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} used twice");
        assert!(panel["gridPos"].is_object(), "panel {id}: gridPos");
        if panel["type"] != "row" {
            assert_panel_queries(id, panel);
            with_queries += 1;
        }
    }
    assert!(with_queries >= 10, "only {with_queries} panels with queries");
}

/// The datasource variable, and `namespace` and `service` from the
/// per-Service-port connection counter.
fn assert_variables(dashboard: &Value) {
    let variables = dashboard["templating"]["list"].as_array().expect("templating");
    let variable = |name: &str| {
        let found = variables.iter().find(|v| v["name"] == name);
        found.unwrap_or_else(|| panic!("no templating variable {name}"))
    };
    assert_eq!(variable("DS_PROMETHEUS")["type"], "datasource");
    assert_eq!(variable("DS_PROMETHEUS")["query"], "prometheus");
    for name in ["namespace", "service"] {
        let v = variable(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], DATASOURCE, "{name}");
        let definition = v["definition"].as_str().unwrap_or_default();
        assert!(
            definition.starts_with("label_values(svcproxy_connections_total")
                && definition.ends_with(&format!(", {name})")),
            "{name}: {definition}"
        );
    }
}

/// A panel's queries use the dashboard's datasource, and per-Service
/// traffic queries honour the namespace and service filters.
fn assert_panel_queries(id: u64, panel: &Value) {
    assert_eq!(panel["datasource"]["uid"], DATASOURCE, "panel {id}");
    let targets = panel["targets"].as_array().expect("targets");
    assert!(!targets.is_empty(), "panel {id} queries nothing");
    for target in targets {
        assert_eq!(target["datasource"]["uid"], DATASOURCE, "panel {id}");
        let expr = target["expr"].as_str().expect("expr");
        if expr.contains("svcproxy_connections") || expr.contains("_bytes_total") {
            assert!(
                expr.contains("namespace=~\"$namespace\"")
                    && expr.contains("service=~\"$service\""),
                "panel {id} ignores the namespace and service filters: {expr}"
            );
        }
    }
}

/// The dashboard's PromQL, with Grafana's variables filled in, parses: each
/// expression becomes a recording rule for `promtool check rules`.
#[test]
fn dashboard_promql_parses() {
    let promtool = tools::promtool();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for query in queries(&dashboard()) {
        let expr = match query.strip_prefix("label_values(") {
            // label_values(SELECTOR, label): the selector is PromQL.
            Some(rest) => rest.rsplit_once(',').map_or(rest, |(selector, _)| selector),
            None if query == "prometheus" => continue, // the datasource variable
            None => query.as_str(),
        };
        let expr = serde_json::to_string(&fill_grafana_variables(expr)).expect("JSON");
        count += 1;
        // A JSON string is a YAML double-quoted scalar.
        rules += &format!("      - record: dashboard:query_{count}\n        expr: {expr}\n");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rules.yaml");
    fs::write(&file, &rules).expect("write rules");
    let output = run_tool(Command::new(promtool).args(["check", "rules"]).arg(&file), "");
    assert!(
        output.status.success(),
        "promtool check rules: the dashboard's PromQL does not parse {}\n--- rules:\n{rules}",
        shown(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{count} rules found")), "{}", shown(&output));
}

/// Grafana's interval variables as durations, every other `$var` or
/// `${var}` as the match-all regex.
fn fill_grafana_variables(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'{').is_some() {
            chars.by_ref().find(|c| *c == '}');
        } else {
            while chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_').is_some() {}
        }
        out.push_str(".*");
    }
    out
}
