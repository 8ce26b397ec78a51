//! Inbound JWT sign-in cost per request: a token seen for the first time
//! (signature, claims, caller derivation) and a token seen before (the
//! proxy remembers verified tokens by digest), against a PAT lookup.
//! ES256 keys generated at start (rcgen); nothing leaves the process.

use std::sync::Arc;

use base64::Engine;
use catalog::{Snapshot, SnapshotDocument};
use serde_json::json;

fn main() {
    divan::main();
}

const AUDIENCE: &str = "https://gateway.example/mcp";
const ISSUER: &str = "https://idp.example";

struct Fixture {
    snapshot: Arc<Snapshot>,
    /// Distinct signed tokens (each verified "for the first time" once per pass).
    tokens: Vec<String>,
    pat: &'static str,
}

fn fixture() -> Fixture {
    let key = rcgen::KeyPair::generate().expect("P-256 key");
    let raw = key.public_key_raw(); // 0x04 ‖ X ‖ Y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    }]});
    let pat = "tg_bench_pat_0123456789abcdef";
    let yaml = format!(
        r#"
teams: [{{name: eng}}]
servers:
  - {{name: srv, owner: eng, status: approved, endpoint: "http://127.0.0.1:9/mcp"}}
principals:
  - {{name: bot, kind: agent, teams: [eng], tokens: [{{name: t, sha256: {}}}]}}
policies:
  - {{name: eng, subjects: {{teams: [eng]}}, allow: [{{server: srv}}]}}
identity_providers:
  - {{name: idp, issuer: "{ISSUER}", audience: "{AUDIENCE}", jwks_uri: "https://idp.example/jwks", groups_to_teams: {{engineering: eng}}}}
"#,
        hex::encode(catalog::token_digest(pat))
    );
    let file: catalog::model::ConfigFile = yaml_serde::from_str(&yaml).expect("bench config");
    let mut doc = SnapshotDocument {
        version: 1,
        sources: vec![("bench.yaml".into(), file)],
        ..Default::default()
    };
    doc.jwks
        .insert("jwks:https://idp.example/jwks".into(), jwks.to_string());
    let snapshot = Arc::new(doc.compile().expect("bench snapshot compiles"));
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tokens = (0..256)
        .map(|i| {
            let claims = json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{i}"),
                "groups": ["engineering"], "iat": now, "exp": now + 3600,
            });
            jsonwebtoken::encode(&header, &claims, &encoding).expect("signs")
        })
        .collect();
    Fixture {
        snapshot,
        tokens,
        pat,
    }
}

/// Full verification: ES256 signature, claims, caller and class.
#[divan::bench(sample_size = 100)]
fn first_sight_es256(bencher: divan::Bencher) {
    let f = fixture();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % f.tokens.len();
        let v = f.snapshot.verify_jwt(&f.tokens[i]).expect("valid");
        f.snapshot.jwt_caller(&v).expect("signs in")
    });
}

/// A token the proxy verified before: digest, cache lookup, caller.
#[divan::bench(sample_size = 1000)]
fn remembered(bencher: divan::Bencher) {
    let f = fixture();
    let digests: Vec<[u8; 32]> = f.tokens.iter().map(|t| catalog::token_digest(t)).collect();
    for (t, d) in f.tokens.iter().zip(&digests) {
        toolgate_proxy::jwt::verify(&f.snapshot, t, d).expect("valid");
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % f.tokens.len();
        let d = catalog::token_digest(&f.tokens[i]);
        let v = toolgate_proxy::jwt::verify(&f.snapshot, &f.tokens[i], &d).expect("valid");
        f.snapshot.jwt_caller(&v).expect("signs in")
    });
}

/// The PAT path for comparison: digest and lookup.
#[divan::bench(sample_size = 1000)]
fn pat(bencher: divan::Bencher) {
    let f = fixture();
    bencher.bench_local(|| {
        let d = catalog::token_digest(f.pat);
        f.snapshot.authenticate(&d).expect("known")
    });
}
