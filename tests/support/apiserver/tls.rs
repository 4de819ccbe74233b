//! HTTPS for `ApiServer::start_tls`: a fresh CA and a server certificate
//! it signs for `127.0.0.1` and `localhost`, made with rcgen per server,
//! served by rustls (ring, HTTP/1.1 by ALPN). The client trusts the CA, as
//! a kubeconfig's `certificate-authority-data` does, not the leaf.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The CA a client must trust, and the acceptor serving its certificate.
pub(super) struct Tls {
    pub(super) ca_pem: String,
    pub(super) acceptor: TlsAcceptor,
}

// === impl Tls ===

impl Tls {
    pub(super) fn generate() -> Tls {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "svcproxy fake API server CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().expect("server key");
        let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut leaf = CertificateParams::new(sans).expect("server parameters");
        leaf.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf.signed_by(&key, &issuer).expect("server certificate");

        let chain = vec![leaf.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // The provider named, not the process default: a test binary that
        // links both ring and aws-lc-rs has no default. ring, as kube-rs's
        // default TLS; its lack of post-quantum key exchange (the reason
        // for the deprecation) does not matter on loopback.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Tls { ca_pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
    }
}
