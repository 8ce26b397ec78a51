//! Reading a config directory and resolving `env:` / `file:` references
//! (feature `fs`): the only I/O in this crate, shared by the proxy's file
//! mode and the control plane.

use std::path::Path;

/// Reads every `*.yaml` / `*.yml` file directly in `dir`, sorted by name:
/// `(file name, contents)`. Errors name the path.
pub fn read_config_files(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let io = |path: &Path, e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into();
            files.push((name, text));
        }
    }
    files.sort();
    Ok(files)
}

/// Resolves `env:NAME` from the environment and `file:PATH` from a file
/// (relative paths from `dir`). Errors never include the value.
pub fn resolve_local_secret(dir: &Path, reference: &str) -> Result<String, String> {
    match reference.split_once(':') {
        Some(("env", name)) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        }
        Some(("file", path)) => {
            let path = dir.join(path);
            std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        Some(("store", _)) => Err("store: secrets are held by the control plane".to_string()),
        _ => Err("not a secret reference".to_string()),
    }
}
