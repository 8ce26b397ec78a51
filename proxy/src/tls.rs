//! Trust for `https` upstreams on a private PKI (`tls_ca` in the catalog).
//!
//! Parsed CA bundles are kept by content, so a bundle is parsed once, not per
//! request, and an edited bundle is a different entry.

use std::sync::Arc;

use dashmap::DashMap;
use pingora_core::protocols::tls::CaType;
use pingora_core::utils::tls::{parse_x509, WrappedX509};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Most distinct bundles kept before the cache starts over.
const MAX_BUNDLES: usize = 256;

/// Parsed CA bundles by PEM text.
#[derive(Default)]
pub struct CaCache {
    bundles: DashMap<Arc<str>, Arc<CaType>>,
}

impl CaCache {
    /// The parsed form of `pem`: every certificate in it, at least one.
    pub fn get(&self, pem: &Arc<str>) -> Result<Arc<CaType>, String> {
        if let Some(ca) = self.bundles.get(pem) {
            return Ok(ca.clone());
        }
        let ca = parse_bundle(pem)?;
        if self.bundles.len() >= MAX_BUNDLES {
            self.bundles.clear();
        }
        self.bundles.insert(pem.clone(), ca.clone());
        Ok(ca)
    }
}

fn parse_bundle(pem: &str) -> Result<Arc<CaType>, String> {
    let mut certs = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| format!("invalid PEM certificate: {e}"))?;
        // Validate first: WrappedX509::new panics on DER it cannot parse.
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("a certificate in the CA bundle cannot be parsed: {e}"))?;
        certs.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    if certs.is_empty() {
        return Err("the CA bundle holds no certificate".into());
    }
    Ok(Arc::from(certs))
}
