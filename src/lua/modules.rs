//! Where `require` finds modules: the `lua/` directories, and the names that map to a file in
//! them (so that a name can never leave them).

use std::path::PathBuf;

use crate::config::Config;

/// The library built into the binary: the source tree's `lua/`, compiled in, so an installed
/// autoheal needs no directory of its own and reads nothing of the machine it was built on.
pub const BUILTIN: &[(&str, &str)] = &[
    ("disk", include_str!("../../lua/disk.lua")),
    ("file", include_str!("../../lua/file.lua")),
    ("httpjson", include_str!("../../lua/httpjson.lua")),
    ("memcached", include_str!("../../lua/memcached.lua")),
    ("mysql", include_str!("../../lua/mysql.lua")),
    ("postgres", include_str!("../../lua/postgres.lua")),
    ("redis", include_str!("../../lua/redis.lua")),
];

/// Where the package puts site modules, searched after `settings.lua_path`: a module there
/// overrides the built-in one of the same name.
pub const SHARED_DIR: &str = "/usr/share/autoheal/lua";

/// The directories `require` searches before the built-in library, in order:
/// `settings.lua_path`, then [`SHARED_DIR`] if it exists. `lua_path` is listed even when it
/// does not exist (so a typo in it shows up in "searched:").
pub fn lua_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = &config.settings.lua_path {
        dirs.push(p.clone());
    }
    let shared = PathBuf::from(SHARED_DIR);
    if shared.is_dir() && !dirs.contains(&shared) {
        dirs.push(shared);
    }
    dirs
}

/// A module `require` found: a file of a lua dir, or one of the built-in library.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Module {
    File(PathBuf),
    Builtin {
        name: &'static str,
        source: &'static str,
    },
}

impl Module {
    /// How messages name it, and its chunk name: the file, or `<builtin>/redis.lua`.
    pub fn label(&self) -> String {
        match self {
            Module::File(path) => path.display().to_string(),
            Module::Builtin { name, .. } => format!("<builtin>/{name}.lua"),
        }
    }

    /// Its source: a file is judged first (as root, one anyone else can change is their code
    /// run as root: [`crate::trust`]), right before it is read.
    pub fn read(&self) -> Result<std::borrow::Cow<'static, str>, ReadError> {
        match self {
            Module::Builtin { source, .. } => Ok(std::borrow::Cow::Borrowed(source)),
            Module::File(path) => {
                crate::trust::check_if_root(path).map_err(ReadError::Untrusted)?;
                std::fs::read_to_string(path)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|e| ReadError::Io(format!("cannot read {}: {e}", path.display())))
            }
        }
    }
}

/// Why a module's source could not be read.
#[derive(Debug)]
pub enum ReadError {
    Untrusted(crate::trust::Untrusted),
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Untrusted(e) => write!(f, "{e}"),
            ReadError::Io(e) => f.write_str(e),
        }
    }
}

/// Module `name` (`a.b` → `a/b.lua`): the file in the first directory that has it, else the
/// built-in one of that name.
pub fn find_module(dirs: &[PathBuf], name: &str) -> Option<Module> {
    if !valid_module_name(name) {
        return None;
    }
    let rel = format!("{}.lua", name.replace('.', "/"));
    if let Some(path) = dirs.iter().map(|d| d.join(&rel)).find(|p| p.is_file()) {
        return Some(Module::File(path));
    }
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(name, source)| Module::Builtin { name, source })
}

/// The names of every module there is: the lua dirs' (`redis` for `redis.lua`) and the
/// built-in library's.
pub fn module_names(dirs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".lua") {
                names.push(stem.to_string());
            }
        }
    }
    names
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

/// "no Lua module `x` (searched: a, b)".
pub(crate) fn no_module(name: &str, dirs: &[PathBuf]) -> String {
    if !valid_module_name(name) {
        return format!(
            "bad module name `{name}`: a module is named by dotted identifiers (`redis`, `site.checks`), not a path"
        );
    }
    let searched: Vec<String> = dirs
        .iter()
        .map(|d| d.display().to_string())
        .chain(["the library built into autoheal".to_string()])
        .collect();
    format!("no Lua module `{name}` (searched: {})", searched.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_module_of_the_library_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".lua").map(str::to_string)
            })
            .collect();
        files.sort();
        let built: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, built);
    }

    #[test]
    fn a_file_of_a_lua_dir_overrides_the_built_in_module() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            find_module(&[dir.path().to_path_buf()], "redis"),
            Some(Module::Builtin { name: "redis", .. })
        ));
        std::fs::write(dir.path().join("redis.lua"), "return {}").unwrap();
        assert_eq!(
            find_module(&[dir.path().to_path_buf()], "redis"),
            Some(Module::File(dir.path().join("redis.lua")))
        );
        assert_eq!(find_module(&[], "nosuch"), None);
        assert_eq!(find_module(&[], "../redis"), None);
    }
}
