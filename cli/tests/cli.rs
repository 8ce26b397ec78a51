//! The `toolgate` binary as operators run it.

use std::process::Command;

fn toolgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("toolgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_accepts_the_examples_and_names_file_and_field_of_errors() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let (ok, out, err) = toolgate(&["config", "check", examples]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("valid (1 routable servers"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("teams.yaml"), "teams: [{name: eng}]\n").unwrap();
    std::fs::write(
        dir.path().join("servers.yaml"),
        "servers:\n  - {name: s, owner: nobody, status: approved, endpoint: 'http://127.0.0.1:1/mcp'}\n",
    )
    .unwrap();
    let (ok, _, err) = toolgate(&["config", "check", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("servers.yaml: servers[0].owner: unknown team \"nobody\""),
        "{err}"
    );
}

#[test]
fn token_new_prints_a_token_and_its_digest() {
    let (ok, out, _) = toolgate(&["token", "new"]);
    assert!(ok);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:  "))
        .unwrap();
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("sha256: "))
        .unwrap();
    assert!(token.starts_with("tg_") && token.len() == 67, "{token}");
    assert_eq!(digest, hex::encode(catalog::token_digest(token)));
}

#[test]
fn operator_commands_explain_a_missing_admin_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["server", "list"])
        .env_remove("TOOLGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOOLGATE_ADMIN_TOKEN"));
}
