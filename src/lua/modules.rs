//! Where `require` finds modules: the `lua/` directories, and the names that map to a file in
//! them (so that a name can never leave them).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// The directories `require` searches, in order: `settings.lua_path`, then the library shipped
/// with the binary (`<exe dir>/../share/autoheal/lua`, `<exe dir>/../lua`, `<exe dir>/lua`),
/// then, as a fallback for development, the source tree's `lua/`. Only `lua_path` is listed
/// when it does not exist (so a typo in it shows up in "searched:").
pub fn lua_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = &config.settings.lua_path {
        dirs.push(p.clone());
    }
    let mut shipped = Vec::new();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        shipped.push(bin.join("../share/autoheal/lua"));
        shipped.push(bin.join("../lua"));
        shipped.push(bin.join("lua"));
    }
    shipped.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/lua")));
    for dir in shipped {
        if dir.is_dir() {
            let dir = dir.canonicalize().unwrap_or(dir);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// A module name is dotted identifiers (`redis`, `site.checks`); nothing else can name a file,
/// so `require` cannot leave the `lua/` directories.
pub(crate) fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The file of module `name` (`a.b` → `a/b.lua`) in the first directory that has it.
pub fn module_path(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    if !valid_module_name(name) {
        return None;
    }
    let rel = format!("{}.lua", name.replace('.', "/"));
    dirs.iter().map(|d| d.join(&rel)).find(|p| p.is_file())
}

/// "no Lua module `x` (searched: a, b)".
pub(crate) fn no_module(name: &str, dirs: &[PathBuf]) -> String {
    if !valid_module_name(name) {
        return format!(
            "bad module name `{name}`: a module is named by dotted identifiers (`redis`, `site.checks`), not a path"
        );
    }
    let searched = if dirs.is_empty() {
        "no lua directory found".to_string()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("no Lua module `{name}` (searched: {searched})")
}
