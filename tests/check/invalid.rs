//! `svcproxy check` on tests/fixtures/invalid: each file, named after the
//! rule it breaks, is rejected with one error line naming the file, the
//! line and the field as the API server would, while the valid objects
//! beside the broken one are still listed; checked together, every file is
//! reported; of two Services claiming one nodePort, the same one wins
//! whatever their order. Contract: DESIGN.md §2-§3.

use std::collections::BTreeSet;
use std::fs;

use crate::support;
use crate::support::{CHECK_BUDGET, Output, Row, check, fixture};

/// One file of tests/fixtures/invalid and what `check` must say about it.
struct Case {
    file: &'static str,
    /// The line the error must point at, where unambiguous.
    line: Option<u32>,
    /// Substrings that one single stderr line must all contain.
    error: &'static [&'static str],
    /// Valid Services beside the broken object: still listed.
    listed: &'static [&'static str],
    /// The broken Service: not listed.
    rejected: Option<&'static str>,
}

macro_rules! invalid_fixtures {
    ($($test:ident => $case:expr;)*) => {
        const CASES: &[Case] = &[$($case),*];
        $(
            #[test]
            fn $test() {
                assert_rejected(&$case);
            }
        )*
    };
}

invalid_fixtures! {
    rejects_unparseable_yaml_naming_file_and_line => Case {
        file: "unparseable-yaml.yaml",
        line: Some(7),
        error: &[],
        listed: &[],
        rejected: None,
    };
    rejects_a_billion_laughs_alias_bomb => Case {
        file: "billion-laughs.yaml",
        line: None,
        error: &["too many YAML aliases expanded"],
        listed: &[],
        rejected: None,
    };
    rejects_nesting_5000_levels_deep => Case {
        file: "deep-nesting.yaml",
        line: None,
        error: &["nested more than 100 levels deep"],
        listed: &[],
        rejected: None,
    };
    rejects_duplicate_keys_suggesting_a_document_separator => Case {
        file: "duplicate-keys.yaml",
        line: Some(10),
        error: &["duplicate key \"apiVersion\"", "several objects in one document?"],
        listed: &[],
        rejected: None,
    };
    rejects_a_port_written_as_a_word_naming_the_expected_type => Case {
        file: "port-wrong-type.yaml",
        line: Some(9),
        error: &[
            "default/port-words: ",
            "spec.ports[0].port: json: cannot unmarshal string into Go struct field \
             ServicePort.spec.ports.port of type int32",
        ],
        listed: &["port-words-ok"],
        rejected: Some("port-words"),
    };
    rejects_port_zero_naming_file_and_field => Case {
        file: "port-zero.yaml",
        line: Some(10),
        error: &[
            "default/port-zero: ",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ],
        listed: &["port-zero-ok"],
        rejected: Some("port-zero"),
    };
    rejects_port_70000_naming_the_second_port => Case {
        file: "port-too-large.yaml",
        line: Some(12),
        error: &[
            "default/port-too-large: ",
            "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ],
        listed: &[],
        rejected: Some("port-too-large"),
    };
    rejects_a_missing_port_as_required => Case {
        file: "port-missing.yaml",
        line: None,
        error: &["shop/port-missing: ", "spec.ports[0].port: Required value"],
        listed: &["port-missing-ok"],
        rejected: Some("port-missing"),
    };
    rejects_node_port_80_outside_the_node_port_range => Case {
        file: "nodeport-out-of-range.yaml",
        line: Some(11),
        error: &[
            "default/nodeport-low: ",
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid \
             range. The range of valid ports is 30000-32767",
        ],
        listed: &[],
        rejected: Some("nodeport-low"),
    };
    rejects_a_node_port_on_a_cluster_ip_service => Case {
        file: "nodeport-on-clusterip.yaml",
        line: Some(11),
        error: &["default/clusterip-with-nodeport: ", "spec.ports[0].nodePort: Forbidden"],
        listed: &[],
        rejected: Some("clusterip-with-nodeport"),
    };
    rejects_a_health_check_node_port_without_local_policy => Case {
        file: "health-check-node-port-without-local.yaml",
        line: Some(12),
        error: &[
            "default/lb-cluster-policy: ",
            "spec.healthCheckNodePort: Invalid value: 30200: may only be set when",
        ],
        listed: &["lb-local"],
        rejected: Some("lb-cluster-policy"),
    };
    rejects_one_of_two_services_claiming_the_same_node_port => Case {
        file: "nodeport-duplicate.yaml",
        line: None,
        error: &["spec.ports[0].nodePort: ", "30200"],
        listed: &[],
        rejected: None,
    };
    rejects_udp_responses_that_are_not_a_count => Case {
        file: "udp-responses-not-a-number.yaml",
        line: Some(6),
        error: &[
            "default/kube-dns: ",
            "metadata.annotations.svcproxy.io/udp-responses: Invalid value: \"one\": \
             must be a whole number of replies, at least 1",
        ],
        listed: &["resolver"],
        rejected: Some("kube-dns"),
    };
    rejects_a_source_range_that_is_no_cidr => Case {
        file: "source-ranges-invalid.yaml",
        line: Some(21),
        error: &[
            "default/firewalled: ",
            "spec.loadBalancerSourceRanges[1]: Invalid value: \"192.168.1.1\": \
             must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24",
        ],
        listed: &["public"],
        rejected: Some("firewalled"),
    };
    rejects_source_ranges_on_a_service_that_is_no_load_balancer => Case {
        file: "source-ranges-not-load-balancer.yaml",
        line: Some(19),
        error: &[
            "default/node-firewalled: ",
            "spec.loadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'",
        ],
        listed: &["public"],
        rejected: Some("node-firewalled"),
    };
    rejects_affinity_timeout_over_a_day => Case {
        file: "timeout-seconds-too-large.yaml",
        line: Some(11),
        error: &[
            "default/sticky: ",
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: \
             must be greater than 0 and less than or equal to 86400",
        ],
        listed: &[],
        rejected: Some("sticky"),
    };
    rejects_duplicate_port_names => Case {
        file: "duplicate-port-names.yaml",
        line: Some(11),
        error: &["default/twin-names: ", "spec.ports[1].name: Duplicate value: \"http\""],
        listed: &[],
        rejected: Some("twin-names"),
    };
    rejects_an_unnamed_port_in_a_multi_port_service => Case {
        file: "port-name-missing-multiport.yaml",
        line: None,
        error: &["default/unnamed-second: ", "spec.ports[1].name: Required value"],
        listed: &[],
        rejected: Some("unnamed-second"),
    };
    rejects_protocol_http_as_unsupported => Case {
        file: "protocol-unsupported.yaml",
        line: Some(10),
        error: &["default/http-protocol: ", "spec.ports[0].protocol: Unsupported value: \"HTTP\""],
        listed: &[],
        rejected: Some("http-protocol"),
    };
    rejects_a_target_port_that_is_not_a_port_name => Case {
        file: "target-port-invalid-name.yaml",
        line: Some(10),
        error: &["default/bad-target: ", "spec.ports[0].targetPort: Invalid value: \"Not_A_Name\""],
        listed: &[],
        rejected: Some("bad-target"),
    };
    rejects_an_endpoints_address_that_is_not_an_ip_but_keeps_its_service => Case {
        file: "endpoints-bad-ip.yaml",
        line: Some(17),
        error: &[
            "default/manual: ",
            "subsets[0].addresses[0].ip: Invalid value: \"999.1.1.1\": must be a valid IP address",
        ],
        listed: &["manual"],
        rejected: None,
    };
    rejects_an_external_ip_that_is_not_an_ip => Case {
        file: "external-ip-invalid.yaml",
        line: Some(9),
        error: &[
            "default/bad-external: ",
            "spec.externalIPs[0]: Invalid value: \"not-an-ip\": must be a valid IP address",
        ],
        listed: &[],
        rejected: Some("bad-external"),
    };
    rejects_a_cluster_ip_that_is_not_an_ip => Case {
        file: "cluster-ip-invalid.yaml",
        line: None,
        // The API server reports it as spec.clusterIPs[0].
        error: &[
            "default/bad-cluster-ip: ",
            "spec.clusterIP",
            "Invalid value: \"127.0.0.300\": must be a valid IP address",
        ],
        listed: &[],
        rejected: Some("bad-cluster-ip"),
    };
    rejects_two_cluster_ips_on_a_single_stack_service => Case {
        file: "ip-family-policy-single-stack-with-two-cluster-ips.yaml",
        line: None,
        error: &[
            "default/two-ips: ",
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' \
             or 'PreferDualStack' when multiple cluster IPs are specified",
        ],
        listed: &[],
        rejected: Some("two-ips"),
    };
    rejects_two_cluster_ips_of_one_family => Case {
        file: "cluster-ips-same-family.yaml",
        line: Some(7),
        error: &[
            "default/two-v4: ",
            "spec.clusterIPs: Invalid value: []string{\"127.10.0.61\", \"127.10.0.62\"}: \
             may specify no more than one IP for each IP family",
        ],
        listed: &[],
        rejected: Some("two-v4"),
    };
    rejects_a_cluster_ip_of_another_family_than_ip_families_says => Case {
        file: "cluster-ip-family-mismatch.yaml",
        line: None,
        error: &[
            "default/wrong-family: ",
            "spec.clusterIPs[0]: Invalid value: \"127.10.0.63\": expected an IPv6 value as \
             indicated by `ipFamilies[0]`",
        ],
        listed: &[],
        rejected: Some("wrong-family"),
    };
    rejects_a_family_the_service_cidr_has_no_pool_for => Case {
        file: "ip-family-not-configured.yaml",
        line: Some(7),
        error: &[
            "default/v6-only: ",
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster \
             (--service-cidr has no IPv6 CIDR)",
        ],
        listed: &[],
        rejected: Some("v6-only"),
    };
    rejects_cookie_session_affinity_as_unsupported => Case {
        file: "session-affinity-unsupported.yaml",
        line: Some(8),
        error: &["default/cookie-affinity: ", "spec.sessionAffinity: Unsupported value: \"Cookie\""],
        listed: &[],
        rejected: Some("cookie-affinity"),
    };
    rejects_an_unknown_service_type_as_unsupported => Case {
        file: "type-unsupported.yaml",
        line: Some(6),
        error: &["default/ingress-type: ", "spec.type: Unsupported value: \"Ingress\""],
        listed: &[],
        rejected: Some("ingress-type"),
    };
    rejects_a_document_that_is_a_list_not_an_object => Case {
        file: "not-an-object.yaml",
        line: None,
        error: &["not a Kubernetes object"],
        listed: &["before-the-list"],
        rejected: Some("in-a-sequence"),
    };
    rejects_a_kind_that_does_not_exist_in_its_group => Case {
        file: "kind-misspelt.yaml",
        line: Some(10),
        error: &[
            "document 2: no matches for kind \"Servce\" in version \"v1\"",
            "(did you mean Service?)",
        ],
        listed: &["spelt-right"],
        rejected: Some("typo"),
    };
    rejects_session_affinity_config_without_client_ip => Case {
        file: "session-affinity-config-without-client-ip.yaml",
        line: Some(11),
        error: &[
            "default/sticky-by-mistake: ",
            "spec.sessionAffinityConfig: Forbidden: must not be set when `sessionAffinity` is None",
        ],
        listed: &["sticky"],
        rejected: Some("sticky-by-mistake"),
    };
    rejects_a_cluster_ip_on_an_external_name_service => Case {
        file: "external-name-with-cluster-ip.yaml",
        line: None,
        error: &[
            "default/alias-with-ip: ",
            "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
        ],
        listed: &["with-ip"],
        rejected: Some("alias-with-ip"),
    };
    rejects_an_unknown_field_one_edit_from_a_known_one => Case {
        file: "unknown-field-near-miss.yaml",
        line: Some(12),
        error: &[
            "default/typo-target: strict decoding error: ",
            "unknown field \"spec.ports[0].targetPrt\" (did you mean targetPort?)",
        ],
        listed: &["spelt-right-target"],
        rejected: Some("typo-target"),
    };
    rejects_a_document_without_kind => Case {
        file: "missing-kind.yaml",
        line: Some(1),
        error: &["kind not set"],
        listed: &["kindful"],
        rejected: Some("kindless"),
    };
    rejects_a_service_without_a_name => Case {
        file: "name-missing.yaml",
        line: None,
        error: &["metadata.name: Required value"],
        listed: &["named"],
        rejected: None,
    };
}

fn assert_rejected(case: &Case) {
    let path = fixture(&format!("invalid/{}", case.file));
    let shown = path.display().to_string();
    let out = check([&path]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{shown} must be rejected\n{out}");
    out.assert_within(CHECK_BUDGET);

    // One broken object: one error line, naming the file (and line).
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{shown}: expected exactly one error line\n{out}");
    let error = errors[0];
    let prefix = format!("{shown}:");
    assert!(error.starts_with(&prefix), "{shown}: error must start with {prefix:?}\n{out}");
    let line = error[prefix.len()..].split(':').next().unwrap_or_default();
    assert!(
        line.parse::<u32>().is_ok_and(|l| l > 0),
        "{shown}: error must read FILE:LINE: ..., got {error:?}\n{out}"
    );
    if let Some(want) = case.line {
        assert_eq!(line, want.to_string(), "{shown}: error line number\n{out}");
    }
    for needle in case.error {
        assert!(error.contains(needle), "{shown}: error must contain {needle:?}\n{out}");
    }

    // The valid objects beside it are still listed; the broken one is not.
    if !case.listed.is_empty() {
        let table = out.table();
        for name in case.listed {
            assert!(table.lists(name), "{shown}: valid {name} must still be listed\n{out}");
        }
    }
    if let Some(name) = case.rejected {
        let table = support::Table::parse(&out.stdout);
        let listed = table.is_ok_and(|t| t.lists(name));
        assert!(!listed, "{shown}: the invalid {name} must not be listed\n{out}");
    }
}

#[test]
fn every_invalid_fixture_has_a_case() {
    let dir = support::root().join("tests/fixtures/invalid");
    let on_disk: BTreeSet<String> = fs::read_dir(&dir)
        .expect("tests/fixtures/invalid")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let cased: BTreeSet<String> = CASES.iter().map(|c| c.file.to_owned()).collect();
    assert_eq!(on_disk, cased, "each invalid fixture needs exactly one case above");
}

#[test]
fn a_node_port_claimed_twice_goes_to_the_same_service_whatever_the_file_order() {
    let fixture_text =
        fs::read_to_string(support::root().join(fixture("invalid/nodeport-duplicate.yaml")))
            .expect("fixture");
    let (comment_and_beta, alpha) = fixture_text.split_once("---\n").expect("two documents");
    let dir = tempfile::tempdir().expect("tempdir");
    let swapped = dir.path().join("swapped.yaml");
    fs::write(&swapped, format!("{alpha}---\n{comment_and_beta}")).expect("write");

    let kept = |out: &Output| {
        out.assert_no_panic();
        assert_eq!(out.code(), Some(1), "{out}");
        let kept: Vec<Row> = out
            .table()
            .rows
            .into_iter()
            .filter(|r| r.name == "alpha" || r.name == "beta")
            .collect();
        assert_eq!(kept.len(), 1, "exactly one of alpha, beta keeps nodePort 30200\n{out}");
        assert_eq!(kept[0].ports, "80:30200/TCP", "{out}");
        kept[0].name.clone()
    };
    let as_written = kept(&check([fixture("invalid/nodeport-duplicate.yaml")]));
    let swapped = kept(&check([&swapped]));
    assert_eq!(as_written, swapped, "the winner must not depend on the order in the file");
}

#[test]
fn invalid_fixtures_checked_together_report_every_file() {
    let out = check([fixture("invalid")]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    out.assert_within(CHECK_BUDGET);
    for case in CASES {
        let shown = fixture(&format!("invalid/{}", case.file)).display().to_string();
        assert!(
            out.error_lines().iter().any(|l| l.starts_with(&format!("{shown}:"))),
            "{shown} is not reported\n{out}"
        );
    }
    let table = out.table();
    for name in CASES.iter().flat_map(|c| c.listed) {
        assert!(table.lists(name), "valid {name} must still be listed\n{out}");
    }
}
