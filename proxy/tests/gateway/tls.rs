//! `https` upstreams: verified against a private CA named in the catalog.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use toolgate_proxy::demo::{self, DemoOptions};

use crate::common::*;

struct Pki {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

fn private_pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

struct TlsListener {
    inner: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let Ok((tcp, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[tokio::test]
async fn https_upstream_verified_with_the_catalog_ca() {
    let pki = private_pki();
    let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = inner.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let options = DemoOptions {
        token: Some(UPSTREAM_SECRET.into()),
        json_response: true,
        sessions: true,
    };
    let app = demo::router(options, cancel.clone());
    let listener = TlsListener {
        inner,
        acceptor: pki.acceptor,
    };
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled_owned().await })
            .await;
    });

    let gw = Gateway::start(addr).await;
    write(gw.dir.path(), "ca.pem", &pki.ca_pem);
    let server = |extra: &str| {
        format!("servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: https://{addr}/mcp\n    auth: {{type: bearer, secret: file:upstream-token}}\n{extra}")
    };
    // The system roots do not know this server: no connection is trusted.
    gw.edit("servers.yaml", &server("")).await;
    let r = post(&gw.url("demo"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);

    gw.edit("servers.yaml", &server("    tls_ca: file:ca.pem\n"))
        .await;
    let r = post(&gw.url("demo"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("toolgate demo issue tracker"), "{}", r.body);
    cancel.cancel();
    gw.stop().await;
}
