use super::*;
use crate::model::tests::model;
use crate::model::{Model, Options};

fn svc(spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: ns\nspec:\n{spec}  ports:\n  - port: 80\n"
    )
}

fn errors(text: &str) -> Vec<String> {
    model(text)
        .errors
        .iter()
        .map(|e| e.to_string().split_once("ns/s: ").unwrap().1.to_owned())
        .collect()
}

fn dual_model(text: &str, cidrs: &str) -> Model {
    let mut loaded = crate::manifest::Loaded::default();
    loaded.add_text(std::path::Path::new("test.yaml"), text);
    let options =
        Options { service_cidr: cidrs.parse().unwrap(), ..crate::model::tests::options() };
    Model::build(&loaded.objects, &options)
}

#[test]
fn service_cidrs_take_one_cidr_per_family() {
    let both: ServiceCidrs = "10.96.0.0/12,fd00:10:96::/112".parse().unwrap();
    assert_eq!(both.first_family(), Family::V4);
    assert_eq!(both.get(Family::V6), Some("fd00:10:96::/112".parse().unwrap()));
    assert_eq!(both.to_string(), "10.96.0.0/12,fd00:10:96::/112");
    let v6: ServiceCidrs = "fd00::/108".parse().unwrap();
    assert_eq!((v6.first_family(), v6.get(Family::V4)), (Family::V6, None));
    let same = "10.0.0.0/8,10.96.0.0/12".parse::<ServiceCidrs>().unwrap_err();
    assert_eq!(
        same.to_string(),
        "10.0.0.0/8 and 10.96.0.0/12 are both IPv4: give one CIDR per IP family"
    );
    assert!(matches!("a,b,c".parse::<ServiceCidrs>(), Err(Error::NotCidr(_))));
    assert!(matches!(
        "10.0.0.0/8,fd00::/64,fd01::/64".parse::<ServiceCidrs>(),
        Err(Error::TooMany)
    ));
}

#[test]
fn families_are_validated_as_the_api_server_does() {
    let cases = [
        (
            "  ipFamilies: [IPv5]\n",
            "spec.ipFamilies[0]: Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
        ),
        (
            "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv4]\n",
            "spec.ipFamilies[1]: Duplicate value: \"IPv4\"",
        ),
        (
            "  ipFamilyPolicy: Dual\n",
            "spec.ipFamilyPolicy: Unsupported value: \"Dual\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
        ),
        (
            "  clusterIP: 10.96.0.1\n  clusterIPs: [10.96.0.2]\n",
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.2\"}: first value must match `clusterIP`",
        ),
        (
            "  ipFamilyPolicy: PreferDualStack\n  clusterIPs: [10.96.0.1, 10.96.0.2]\n",
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"10.96.0.2\"}: may specify no more than one IP for each IP family",
        ),
        (
            "  ipFamilyPolicy: PreferDualStack\n  clusterIPs: [10.96.0.1, \"fd00::1\", 10.96.0.2]\n",
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"fd00::1\", \"10.96.0.2\"}: may only hold up to 2 values",
        ),
        (
            "  clusterIPs: [\"None\", 10.96.0.1]\n",
            "spec.clusterIPs: Invalid value: []string{\"None\", \"10.96.0.1\"}: 'None' must be the first and only value",
        ),
        (
            "  ipFamilies: [IPv6]\n  clusterIP: 10.96.0.1\n",
            "spec.clusterIPs[0]: Invalid value: \"10.96.0.1\": expected an IPv6 value as indicated by `ipFamilies[0]`",
        ),
        (
            "  clusterIPs: [10.96.0.1, \"fd00::1\"]\n",
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
        ),
        (
            "  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4, IPv6]\n",
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
        ),
    ];
    for (spec, want) in cases {
        let got = errors(&svc(spec));
        assert!(got.iter().any(|e| e == want), "{spec}: {got:?}");
    }
}

#[test]
fn a_dual_stack_service_keeps_both_cluster_ips_written() {
    let m = model(&svc("  ipFamilyPolicy: RequireDualStack\n  clusterIPs: [10.96.0.1, \"::1\"]\n"));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let ips: Vec<String> = m.services[0].cluster_ips().iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.96.0.1", "::1"]);
}

#[test]
fn allocation_gives_each_family_an_address_of_its_pool() {
    let text = svc("  ipFamilyPolicy: PreferDualStack\n");
    let m = dual_model(&text, "10.96.0.0/12,fd00:10:96::/112");
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let ips = m.services[0].cluster_ips();
    assert_eq!(ips.len(), 2);
    assert!("10.96.0.0/12".parse::<IpNet>().unwrap().contains(&ips[0]));
    assert!("fd00:10:96::/112".parse::<IpNet>().unwrap().contains(&ips[1]));
    // The same objects, the same addresses.
    assert_eq!(dual_model(&text, "10.96.0.0/12,fd00:10:96::/112").services[0].cluster_ips(), ips);
    // IPv6 first, on request.
    let v6 = dual_model(&svc("  ipFamilies: [IPv6]\n"), "10.96.0.0/12,fd00:10:96::/112");
    assert!(v6.services[0].cluster_ips()[0].is_ipv6(), "{:?}", v6.services[0].cluster_ips());
    // PreferDualStack on a single-stack cluster: single stack.
    assert_eq!(model(&text).services[0].cluster_ips().len(), 1);
    // A written IPv4 address and an allocated IPv6 one.
    let half = svc("  ipFamilyPolicy: RequireDualStack\n  clusterIP: 10.96.0.7\n");
    let half = dual_model(&half, "10.96.0.0/12,fd00:10:96::/112");
    assert_eq!(half.services[0].cluster_ips()[0].to_string(), "10.96.0.7");
    assert!(half.services[0].cluster_ips()[1].is_ipv6());
}

#[test]
fn a_family_without_a_pool_is_an_error_naming_the_field() {
    let got = errors(&svc("  ipFamilies: [IPv6]\n"));
    assert_eq!(
        got,
        [
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster (--service-cidr has no IPv6 CIDR)"
        ]
    );
    let got = errors(&svc("  ipFamilyPolicy: RequireDualStack\n"));
    assert_eq!(
        got,
        [
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services (--service-cidr has no IPv6 CIDR)"
        ]
    );
}
