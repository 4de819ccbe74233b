use std::net::SocketAddr;

use super::distinct;

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().expect("an address")).collect()
}

#[test]
fn distinct_counts_an_address_of_several_ports_once() {
    let http = addrs(&["127.1.0.1:80", "127.1.0.2:80", "127.1.0.3:80"]);
    // The same pods' other port, one pod serving both on port 80.
    let other = addrs(&["127.1.0.1:80", "127.1.0.1:81", "127.1.0.4:80"]);
    let none: Vec<SocketAddr> = Vec::new();
    let lists = [&http, &none, &other, &http];
    assert_eq!(distinct(lists.iter().map(|l| l.iter().copied())), 5);
    assert_eq!(distinct([&none].iter().map(|l| l.iter().copied())), 0);
    assert_eq!(distinct(std::iter::empty::<std::vec::IntoIter<SocketAddr>>()), 0);
}
