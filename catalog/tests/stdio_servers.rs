//! stdio and legacy-SSE servers in the catalog: what operators may write,
//! the errors naming file and field, and the compiled upstream.

use catalog::model::{StdioMode, Transport};
use catalog::{compile, load};

fn config(servers: &str) -> Vec<(String, String)> {
    vec![(
        "servers.yaml".to_string(),
        format!("teams: [{{name: eng}}]\nservers:\n{servers}"),
    )]
}

fn errors_of(servers: &str) -> String {
    match load(&config(servers)) {
        Ok(_) => panic!("accepted:\n{servers}"),
        Err(e) => e.to_string(),
    }
}

const STDIO: &str = "  - name: files\n    owner: eng\n    status: approved\n    transport: stdio\n    command: mcp-files\n    args: [--root, /srv]\n    env: {MODE: ro}\n    secret_env: {API_KEY: env:FILES_KEY}\n    stdio: {mode: shared, max_processes: 2}\n";

#[test]
fn a_stdio_server_compiles_with_its_secrets_resolved_but_not_printed() {
    let c = load(&config(STDIO)).unwrap_or_else(|e| panic!("{e}"));
    let resolve = |r: &str| match r {
        "env:FILES_KEY" => Ok("s3cr3t-value\n".to_string()),
        _ => Err("unknown".to_string()),
    };
    let snapshot = compile(&c, 1, &resolve).unwrap_or_else(|e| panic!("{e}"));
    let up = snapshot.upstream("files").unwrap();
    assert_eq!(up.transport, Transport::Stdio);
    let spec = up.stdio.as_ref().unwrap();
    assert_eq!(spec.command, "mcp-files");
    assert_eq!(spec.args, ["--root", "/srv"]);
    assert!(spec
        .env
        .contains(&("API_KEY".into(), "s3cr3t-value".into())));
    assert!(spec.env.contains(&("MODE".into(), "ro".into())));
    assert_eq!(
        (spec.mode, spec.max_processes, spec.idle_timeout_secs),
        (StdioMode::Shared, 2, 300)
    );
    let printed = format!("{up:?}");
    assert!(!printed.contains("s3cr3t"), "{printed}");
}

#[test]
fn an_unreadable_secret_env_names_the_field() {
    let c = load(&config(STDIO)).unwrap();
    let e = compile(&c, 1, &|_: &str| Err("not set".to_string()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("servers.yaml")
            && e.contains("secret_env.API_KEY")
            && e.contains("env:FILES_KEY"),
        "{e}"
    );
}

#[test]
fn a_stdio_server_needs_a_command_and_no_endpoint() {
    let e = errors_of("  - name: files\n    owner: eng\n    status: approved\n    transport: stdio\n    endpoint: http://127.0.0.1:9/mcp\n");
    assert!(
        e.contains("servers.yaml") && e.contains("servers[0].command"),
        "{e}"
    );
    assert!(e.contains("servers[0].endpoint"), "{e}");
}

#[test]
fn literal_secrets_and_http_credentials_are_refused_on_stdio_servers() {
    let e = errors_of("  - name: files\n    owner: eng\n    status: approved\n    transport: stdio\n    command: x\n    secret_env: {API_KEY: hunter2}\n    auth: {type: bearer, secret: env:X}\n    stdio: {max_processes: 0}\n");
    assert!(
        e.contains("secret_env.API_KEY") && e.contains("never the secret itself"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the value is not echoed: {e}");
    assert!(e.contains("servers[0].auth"), "{e}");
    assert!(e.contains("stdio.max_processes"), "{e}");
}

#[test]
fn stdio_fields_are_refused_on_http_servers_and_http_servers_need_an_endpoint() {
    let e = errors_of("  - name: web\n    owner: eng\n    status: approved\n    command: x\n    args: [y]\n    stdio: {}\n");
    for field in [
        "servers[0].command",
        "servers[0].args",
        "servers[0].stdio",
        "servers[0].endpoint",
    ] {
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn a_legacy_sse_server_is_routed() {
    let c = load(&config("  - name: old\n    owner: eng\n    status: approved\n    transport: sse\n    endpoint: http://127.0.0.1:9/sse\n")).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = compile(&c, 1, &|_: &str| Err(String::new())).unwrap();
    let up = snapshot.upstream("old").unwrap();
    assert_eq!(
        (up.transport, up.endpoint.path_and_query.as_str()),
        (Transport::Sse, "/sse")
    );
}
