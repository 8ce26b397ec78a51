//! Upstream endpoint URLs.

/// A parsed upstream endpoint: `http(s)://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// True for `https`.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (defaults by scheme).
    pub port: u16,
    /// Path and query sent upstream, e.g. `/mcp`.
    pub path_and_query: String,
    /// The `Host` header value the upstream expects (its own authority).
    pub authority: String,
}

impl Endpoint {
    /// Parses an endpoint URL, explaining what is wrong.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{url:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{url:?} must not carry credentials; use auth.secret"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string());
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            path_and_query,
            authority: authority.as_str().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn parses_and_refuses() {
        let e = Endpoint::parse("http://127.0.0.1:9300/mcp").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (false, "127.0.0.1", 9300));
        assert_eq!(
            (e.path_and_query.as_str(), e.authority.as_str()),
            ("/mcp", "127.0.0.1:9300")
        );
        let e = Endpoint::parse("https://mcp.example.com").unwrap();
        assert_eq!((e.tls, e.port, e.path_and_query.as_str()), (true, 443, "/"));
        assert!(Endpoint::parse("ftp://x/").is_err());
        assert!(Endpoint::parse("http://user:pw@x/").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }
}
