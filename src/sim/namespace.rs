//! A node's file-system namespace: a tree of directories and files, walked
//! the way Linux's path lookup walks it, so that the errnos of its corners
//! are Linux's:
//!
//! - every component but the last must be a directory that exists:
//!   `ENOENT` if it is missing, `ENOTDIR` if it is a file;
//! - `.` stays, `..` goes up (at the root it stays at the root), so `d/../f`
//!   is `f` only if `d` is a directory;
//! - a trailing `/` (or a last component `.` or `..`) names a directory:
//!   `ENOTDIR` on a file (and `open` with `O_CREAT` gives `EISDIR` for any
//!   path that ends in `/`);
//! - a component longer than 255 bytes, or a path of 4096 bytes or more,
//!   is `ENAMETOOLONG`.
//!
//! The process's working directory is the root: a relative path and the
//! same path with a leading `/` name the same entry.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::disk::FileId;

/// `NAME_MAX`: the longest component.
const NAME_BYTES_MAX: usize = 255;
/// `PATH_MAX`, counting the terminating NUL.
const PATH_BYTES_MAX: usize = 4096;

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    File(FileId),
    Directory,
    /// Nothing yet, in a directory that exists: `path` is where a create
    /// would put it.
    Missing(PathBuf),
}

/// A path resolved: what it names, and whether it ended in `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) found: Found,
    /// The path ends in `/`: it must name a directory. A file found so is
    /// `ENOTDIR` to every caller but `open` with `O_CREAT`, which says
    /// `EISDIR` first.
    pub(crate) directory_only: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Namespace {
    files: BTreeMap<PathBuf, FileId>,
    /// Every directory but the root (the empty path), which always exists.
    directories: BTreeSet<PathBuf>,
}

impl Namespace {
    /// Resolves `path`, as `open(2)` would before it opens or creates.
    pub(crate) fn resolve(&self, path: &Path) -> Result<Resolved, i32> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(libc::ENOENT);
        }
        if bytes.len() >= PATH_BYTES_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let directory_only = bytes.ends_with(b"/");
        let parts: Vec<&[u8]> = bytes
            .split(|&byte| byte == b'/')
            .filter(|part| !part.is_empty())
            .collect();
        let resolved = |found| {
            Ok(Resolved {
                found,
                directory_only,
            })
        };
        let mut current = PathBuf::new();
        for (index, &part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            match part {
                b"." => continue,
                b".." => {
                    current.pop();
                    continue;
                }
                _ if part.len() > NAME_BYTES_MAX => return Err(libc::ENAMETOOLONG),
                _ => {}
            }
            let next = current.join(std::ffi::OsStr::from_bytes(part));
            if self.directories.contains(&next) {
                current = next;
                continue;
            }
            if let Some(&file) = self.files.get(&next) {
                return if last {
                    resolved(Found::File(file))
                } else {
                    Err(libc::ENOTDIR)
                };
            }
            return if last {
                resolved(Found::Missing(next))
            } else {
                Err(libc::ENOENT)
            };
        }
        // The path ended in a directory: the root, `.`, `..`, or a name.
        resolved(Found::Directory)
    }

    /// The file at `path`, if it names one.
    pub(crate) fn lookup(&self, path: &Path) -> Option<FileId> {
        match self.resolve(path) {
            Ok(Resolved {
                found: Found::File(file),
                directory_only: false,
            }) => Some(file),
            _ => None,
        }
    }

    /// Links a new file at `path`, which [`Namespace::resolve`] found
    /// missing.
    pub(crate) fn insert_file(&mut self, path: PathBuf, file: FileId) {
        assert!(!self.directories.contains(&path));
        let previous = self.files.insert(path, file);
        assert!(previous.is_none());
    }

    /// Creates the directory `path` and every missing one above it, as
    /// `mkdir -p` (`std::fs::create_dir_all`): `ENOTDIR` if a component is
    /// a file.
    pub(crate) fn create_dir_all(&mut self, path: &Path) -> Result<(), i32> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() >= PATH_BYTES_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let mut current = PathBuf::new();
        for part in bytes.split(|&byte| byte == b'/').filter(|p| !p.is_empty()) {
            match part {
                b"." => continue,
                b".." => {
                    current.pop();
                    continue;
                }
                _ if part.len() > NAME_BYTES_MAX => return Err(libc::ENAMETOOLONG),
                _ => {}
            }
            current.push(std::ffi::OsStr::from_bytes(part));
            if self.files.contains_key(&current) {
                return Err(libc::ENOTDIR);
            }
            self.directories.insert(current.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace() -> Namespace {
        let mut namespace = Namespace::default();
        namespace.create_dir_all(Path::new("d/sub")).unwrap();
        namespace.insert_file(PathBuf::from("f"), 0);
        namespace.insert_file(PathBuf::from("d/g"), 1);
        namespace
    }

    /// What `path` names, with `ENOTDIR` for a file named with a `/`.
    fn resolve(namespace: &Namespace, path: &str) -> Result<Found, i32> {
        let resolved = namespace.resolve(Path::new(path))?;
        match resolved.found {
            Found::File(_) if resolved.directory_only => Err(libc::ENOTDIR),
            found => Ok(found),
        }
    }

    #[test]
    fn paths_resolve_as_linux_walks_them() {
        let ns = namespace();
        assert_eq!(resolve(&ns, "f"), Ok(Found::File(0)));
        assert_eq!(resolve(&ns, "/f"), Ok(Found::File(0)));
        assert_eq!(resolve(&ns, "./d//g"), Ok(Found::File(1)));
        assert_eq!(resolve(&ns, "d/../f"), Ok(Found::File(0)));
        assert_eq!(resolve(&ns, "../f"), Ok(Found::File(0)));
        for directory in [".", "/", "d", "d/", "d/.", "d/..", "d/sub/.."] {
            assert_eq!(resolve(&ns, directory), Ok(Found::Directory), "{directory}");
        }
        let missing = |path: &str| Ok(Found::Missing(PathBuf::from(path)));
        assert_eq!(resolve(&ns, "d/../new"), missing("new"));
        assert_eq!(resolve(&ns, "d/new/"), missing("d/new"));
        assert!(ns.resolve(Path::new("d/new/")).unwrap().directory_only);
    }

    #[test]
    fn the_corners_give_linux_s_errnos() {
        let ns = namespace();
        assert_eq!(resolve(&ns, ""), Err(libc::ENOENT));
        assert_eq!(resolve(&ns, "missing/x"), Err(libc::ENOENT));
        assert_eq!(resolve(&ns, "missing/../f"), Err(libc::ENOENT));
        assert_eq!(resolve(&ns, "f/x"), Err(libc::ENOTDIR));
        assert_eq!(resolve(&ns, "f/"), Err(libc::ENOTDIR));
        assert_eq!(resolve(&ns, "f/."), Err(libc::ENOTDIR));
        assert_eq!(resolve(&ns, "f/../d"), Err(libc::ENOTDIR));
        assert_eq!(resolve(&ns, &"a".repeat(256)), Err(libc::ENAMETOOLONG));
        assert_eq!(resolve(&ns, &"a/".repeat(2048)), Err(libc::ENAMETOOLONG));
        let mut ns = ns;
        assert_eq!(ns.create_dir_all(Path::new("f/x")), Err(libc::ENOTDIR));
        assert_eq!(ns.create_dir_all(Path::new("d/sub/deeper")), Ok(()));
        assert_eq!(resolve(&ns, "d/sub/deeper/.."), Ok(Found::Directory));
    }
}
