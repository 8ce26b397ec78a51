//! Fetching identity providers' signing keys (feature `fetch`): the JWKS
//! document at `jwks_uri`, or at the `jwks_uri` that OpenID discovery
//! (`{issuer}/.well-known/openid-configuration`) names. Used by the control
//! plane (which ships the keys in the snapshot) and by a proxy on a config
//! directory; never per request.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::load::Catalog;

/// Time allowed for each HTTP exchange with an IdP.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// An HTTP client for [`fetch_jwks`].
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Fetches the JWKS document of `source` (`jwks:URL` or `oidc:ISSUER`).
/// Errors name the URL, never the content.
pub async fn fetch_jwks(client: &reqwest::Client, source: &str) -> Result<String, String> {
    let url = match source.split_once(':') {
        Some(("jwks", url)) => url.to_string(),
        Some(("oidc", issuer)) => {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let doc: serde_json::Value = serde_json::from_str(&get(client, &discovery).await?)
                .map_err(|e| format!("{discovery}: not an OpenID configuration: {e}"))?;
            let uri = doc["jwks_uri"]
                .as_str()
                .ok_or_else(|| format!("{discovery}: names no jwks_uri"))?;
            crate::identity::check_url(uri).map_err(|m| format!("{discovery}: jwks_uri {m}"))?;
            uri.to_string()
        }
        _ => return Err(format!("{source:?} is not a key source")),
    };
    get(client, &url).await
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = client
        .get(url)
        .header("accept", "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status().as_u16()));
    }
    let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if body.len() > MAX_DOCUMENT {
        return Err(format!("{url}: document larger than {MAX_DOCUMENT} bytes"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
}

/// Every identity provider's key source in `catalog`.
pub fn jwks_sources(catalog: &Catalog) -> Vec<String> {
    let mut sources: Vec<String> = catalog
        .identity_providers
        .iter()
        .map(|l| l.item.jwks_source())
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

/// Fetches every source from synchronous code (also from inside an async
/// runtime: the requests run on a thread of their own): each source's
/// document, or why it could not be had (compiling then names it).
pub fn fetch_all_blocking(sources: Vec<String>) -> BTreeMap<String, Result<String, String>> {
    if sources.is_empty() {
        return BTreeMap::new();
    }
    let names = sources.clone();
    let run = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(rt.block_on(async move {
            let client = client();
            let mut docs = BTreeMap::new();
            for source in sources {
                let doc = fetch_jwks(&client, &source).await;
                docs.insert(source, doc);
            }
            docs
        }))
    };
    let failed = |e: String| names.iter().map(|n| (n.clone(), Err(e.clone()))).collect();
    match std::thread::spawn(run).join() {
        Ok(Ok(docs)) => docs,
        Ok(Err(e)) => failed(e),
        Err(_) => failed("the key fetch failed".to_string()),
    }
}
