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
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::disk::FileId;

/// `NAME_MAX`: the longest component.
const NAME_BYTES_MAX: usize = 255;
/// `PATH_MAX`, counting the terminating NUL.
const PATH_BYTES_MAX: usize = 4096;

/// One directory's identity, which a rename keeps: what a directory fd
/// names. The root is [`ROOT`].
pub(crate) type DirId = usize;

/// The root directory's id.
pub(crate) const ROOT: DirId = 0;

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    File(FileId),
    Directory(DirId),
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

/// What a name in the namespace is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File(FileId),
    Directory(DirId),
}

/// The last component of a path, as Linux's `filename_parentat` sees it:
/// what rename, unlink, rmdir and mkdir act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Last {
    /// A name: the entry's full path (which may or may not exist).
    Normal(PathBuf),
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// No last component: the root (`/`).
    Root,
}

/// A path split into the directory it is in and its last component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parent {
    pub(crate) last: Last,
    /// The path ends in `/`.
    pub(crate) trailing_slash: bool,
}

/// A subtree taken out of the namespace, by path relative to its root
/// (the empty path is the root itself).
struct Tree {
    files: Vec<(PathBuf, FileId)>,
    directories: Vec<(PathBuf, DirId)>,
}

/// One change to a namespace, as it was made (full paths), so that it can
/// be made again on the namespace a crash leaves (`Namespace::apply`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A file created at `path`.
    File { path: PathBuf, file: FileId },
    /// A directory made at `path`.
    Directory { path: PathBuf, directory: DirId },
    /// The entry at `path` removed.
    Unlink { path: PathBuf, remove_dir: bool },
    /// A rename, with its `RENAME_*` flags.
    Rename {
        old: PathBuf,
        new: PathBuf,
        flags: u32,
    },
}

impl Change {
    /// The directories whose entries the change changes (one, or two for a
    /// rename between directories), as `namespace` has them before it.
    pub(crate) fn directories(&self, namespace: &Namespace) -> [DirId; 2] {
        let parent = |path: &Path| namespace.directory_id(path.parent().unwrap_or(Path::new("")));
        match self {
            Change::File { path, .. }
            | Change::Directory { path, .. }
            | Change::Unlink { path, .. } => [parent(path); 2],
            Change::Rename { old, new, .. } => [parent(old), parent(new)],
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Namespace {
    files: BTreeMap<PathBuf, FileId>,
    /// Every directory but the root (the empty path), which always exists.
    directories: BTreeMap<PathBuf, DirId>,
    /// Directories made so far: the next one's id is one more.
    directories_made: DirId,
    /// Directories removed (an open fd on one still names it).
    removed: BTreeSet<DirId>,
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
            if self.directories.contains_key(&next) {
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
        resolved(Found::Directory(self.directory_id(&current)))
    }

    /// Splits `path` into its last component and the directory it is in,
    /// which must exist: every component but the last is walked as
    /// [`Namespace::resolve`] walks it (`ENOENT`, `ENOTDIR`,
    /// `ENAMETOOLONG`).
    pub(crate) fn parent_of(&self, path: &Path) -> Result<Parent, i32> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(libc::ENOENT);
        }
        if bytes.len() >= PATH_BYTES_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let trailing_slash = bytes.ends_with(b"/");
        let parts: Vec<&[u8]> = bytes
            .split(|&byte| byte == b'/')
            .filter(|part| !part.is_empty())
            .collect();
        let Some((&last, walked)) = parts.split_last() else {
            return Ok(Parent {
                last: Last::Root,
                trailing_slash,
            });
        };
        let mut current = PathBuf::new();
        for &part in walked {
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
            if self.directories.contains_key(&next) {
                current = next;
            } else if self.files.contains_key(&next) {
                return Err(libc::ENOTDIR);
            } else {
                return Err(libc::ENOENT);
            }
        }
        let last = match last {
            b"." => Last::Dot,
            b".." => Last::DotDot,
            _ if last.len() > NAME_BYTES_MAX => return Err(libc::ENAMETOOLONG),
            _ => Last::Normal(current.join(std::ffi::OsStr::from_bytes(last))),
        };
        Ok(Parent {
            last,
            trailing_slash,
        })
    }

    /// What the full path `path` (as [`Last::Normal`] holds it) names.
    pub(crate) fn kind(&self, path: &Path) -> Option<Kind> {
        if let Some(&directory) = self.directories.get(path) {
            return Some(Kind::Directory(directory));
        }
        self.files.get(path).map(|&file| Kind::File(file))
    }

    /// The id of the directory at `path`, which exists (the empty path is
    /// the root).
    pub(crate) fn directory_id(&self, path: &Path) -> DirId {
        match path.as_os_str().is_empty() {
            true => ROOT,
            false => self.directories[path],
        }
    }

    /// Whether the directory `directory` was removed.
    pub(crate) fn is_removed(&self, directory: DirId) -> bool {
        self.removed.contains(&directory)
    }

    /// Links a new directory at `path`, where nothing is; returns its id.
    fn insert_directory(&mut self, path: PathBuf) -> DirId {
        assert!(!self.files.contains_key(&path));
        self.directories_made += 1;
        let previous = self.directories.insert(path, self.directories_made);
        assert!(previous.is_none());
        self.directories_made
    }

    /// Unlinks the (empty) directory at `path`.
    fn remove_directory(&mut self, path: &Path) {
        let directory = self.directories.remove(path).expect("a directory");
        assert_ne!(directory, ROOT);
        let inserted = self.removed.insert(directory);
        assert!(inserted);
    }

    /// What `path` names, resolved as `open(2)` resolves it (`None` for
    /// nothing, or an error on the way).
    pub(crate) fn kind_at(&self, path: &Path) -> Option<Kind> {
        match self.resolve(path).ok()?.found {
            Found::File(file) => Some(Kind::File(file)),
            Found::Directory(directory) => Some(Kind::Directory(directory)),
            Found::Missing(_) => None,
        }
    }

    /// Whether the directory `path` has no entries.
    fn is_empty_directory(&self, path: &Path) -> bool {
        let below = |key: &PathBuf| key.starts_with(path) && key.as_path() != path;
        let range = (Bound::Excluded(path.to_path_buf()), Bound::Unbounded);
        let has_file = self
            .files
            .range(range.clone())
            .next()
            .is_some_and(|(key, _)| below(key));
        let has_directory = self
            .directories
            .range(range)
            .next()
            .is_some_and(|(key, _)| below(key));
        !has_file && !has_directory
    }

    /// `mkdir(2)`: `EEXIST` if anything is there (or the last component is
    /// `.`, `..` or the root), as Linux's `filename_create` says.
    pub(crate) fn mkdir(&mut self, path: &Path) -> Result<Change, i32> {
        let Last::Normal(full) = self.parent_of(path)?.last else {
            return Err(libc::EEXIST);
        };
        if self.kind(&full).is_some() {
            return Err(libc::EEXIST);
        }
        let directory = self.insert_directory(full.clone());
        Ok(Change::Directory {
            path: full,
            directory,
        })
    }

    /// Makes `change`, which was made on a namespace in the state this one
    /// is in now, again: how a crash's namespace catches up to the changes
    /// that survive it. Every change succeeds (the same checks passed).
    pub(crate) fn apply(&mut self, change: &Change) {
        match change {
            Change::File { path, file } => self.insert_file(path.clone(), *file),
            Change::Directory { path, directory } => {
                assert!(!self.files.contains_key(path));
                let previous = self.directories.insert(path.clone(), *directory);
                assert!(previous.is_none());
            }
            Change::Unlink { path, remove_dir } => {
                let unlinked = self.unlink(path, *remove_dir);
                assert!(unlinked.is_ok(), "{change:?}: {unlinked:?}");
            }
            Change::Rename { old, new, flags } => {
                let renamed = self.rename(old, new, *flags);
                assert!(renamed.is_ok(), "{change:?}: {renamed:?}");
            }
        }
    }

    /// Every file a name refers to.
    pub(crate) fn files(&self) -> impl Iterator<Item = FileId> + '_ {
        self.files.values().copied()
    }

    /// Whether a name refers to `file`.
    pub(crate) fn references(&self, file: FileId) -> bool {
        self.files.values().any(|&named| named == file)
    }

    /// `unlinkat(2)`: removes a file (returned) or, with `remove_dir`, an
    /// empty directory, with the errnos of Linux's `do_unlinkat` and
    /// `do_rmdir`.
    pub(crate) fn unlink(
        &mut self,
        path: &Path,
        remove_dir: bool,
    ) -> Result<(Option<FileId>, Change), i32> {
        let parent = self.parent_of(path)?;
        let change = |full: &PathBuf| Change::Unlink {
            path: full.clone(),
            remove_dir,
        };
        if remove_dir {
            let full = match parent.last {
                Last::Normal(full) => full,
                Last::DotDot => return Err(libc::ENOTEMPTY),
                Last::Dot => return Err(libc::EINVAL),
                Last::Root => return Err(libc::EBUSY),
            };
            return match self.kind(&full) {
                None => Err(libc::ENOENT),
                Some(Kind::File(_)) => Err(libc::ENOTDIR),
                Some(Kind::Directory(_)) if !self.is_empty_directory(&full) => Err(libc::ENOTEMPTY),
                Some(Kind::Directory(_)) => {
                    self.remove_directory(&full);
                    Ok((None, change(&full)))
                }
            };
        }
        let Last::Normal(full) = parent.last else {
            return Err(libc::EISDIR);
        };
        match self.kind(&full) {
            None => Err(libc::ENOENT),
            Some(Kind::Directory(_)) => Err(libc::EISDIR),
            Some(Kind::File(_)) if parent.trailing_slash => Err(libc::ENOTDIR),
            Some(Kind::File(file)) => {
                self.files.remove(&full);
                Ok((Some(file), change(&full)))
            }
        }
    }

    /// `renameat2(2)` with `RENAME_NOREPLACE`/`RENAME_EXCHANGE` in `flags`,
    /// with the errnos of Linux's `do_renameat2` and `vfs_rename`, checked
    /// in their order. Returns the file a replacing rename unlinked, and the
    /// change (none for an entry renamed onto itself).
    pub(crate) fn rename(
        &mut self,
        old: &Path,
        new: &Path,
        flags: u32,
    ) -> Result<(Option<FileId>, Option<Change>), i32> {
        let no_replace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
            || (no_replace && exchange)
        {
            return Err(libc::EINVAL);
        }
        let (old, new) = (self.parent_of(old)?, self.parent_of(new)?);
        let Last::Normal(old_full) = old.last else {
            return Err(libc::EBUSY);
        };
        let Last::Normal(new_full) = new.last else {
            return Err(if no_replace {
                libc::EEXIST
            } else {
                libc::EBUSY
            });
        };
        let old_kind = self.kind(&old_full).ok_or(libc::ENOENT)?;
        let new_kind = self.kind(&new_full);
        match new_kind {
            Some(_) if no_replace => return Err(libc::EEXIST),
            None if exchange => return Err(libc::ENOENT),
            Some(Kind::File(_)) if exchange && new.trailing_slash => return Err(libc::ENOTDIR),
            _ => {}
        }
        let old_is_directory = matches!(old_kind, Kind::Directory(_));
        if !old_is_directory && (old.trailing_slash || (!exchange && new.trailing_slash)) {
            return Err(libc::ENOTDIR);
        }
        if new_full != old_full && new_full.starts_with(&old_full) {
            return Err(libc::EINVAL); // into itself
        }
        if new_full != old_full && old_full.starts_with(&new_full) {
            return Err(if exchange {
                libc::EINVAL
            } else {
                libc::ENOTEMPTY
            });
        }
        if new_full == old_full {
            return Ok((None, None)); // the same entry: vfs_rename does nothing
        }
        let change = Change::Rename {
            old: old_full.clone(),
            new: new_full.clone(),
            flags,
        };
        if exchange {
            let old_tree = self.take_tree(&old_full);
            let new_tree = self.take_tree(&new_full);
            self.put_tree(&old_full, new_tree);
            self.put_tree(&new_full, old_tree);
            return Ok((None, Some(change)));
        }
        let replaced = match (old_kind, new_kind) {
            (_, None) => None,
            (Kind::Directory(_), Some(Kind::File(_))) => return Err(libc::ENOTDIR),
            (Kind::File(_), Some(Kind::Directory(_))) => return Err(libc::EISDIR),
            (Kind::Directory(_), Some(Kind::Directory(_)))
                if !self.is_empty_directory(&new_full) =>
            {
                return Err(libc::ENOTEMPTY)
            }
            (Kind::Directory(_), Some(Kind::Directory(_))) => {
                self.remove_directory(&new_full);
                None
            }
            (Kind::File(_), Some(Kind::File(replaced))) => {
                self.files.remove(&new_full);
                Some(replaced)
            }
        };
        let tree = self.take_tree(&old_full);
        self.put_tree(&new_full, tree);
        Ok((replaced, Some(change)))
    }

    /// Takes the entry at `root` (a file, or a directory and everything
    /// under it) out of the namespace.
    fn take_tree(&mut self, root: &Path) -> Tree {
        let relative = |key: &Path| {
            key.strip_prefix(root)
                .expect("under the root")
                .to_path_buf()
        };
        let files: Vec<PathBuf> = self
            .files
            .range(root.to_path_buf()..)
            .take_while(|(key, _)| key.starts_with(root))
            .map(|(key, _)| key.clone())
            .collect();
        let directories: Vec<PathBuf> = self
            .directories
            .range(root.to_path_buf()..)
            .take_while(|(key, _)| key.starts_with(root))
            .map(|(key, _)| key.clone())
            .collect();
        let tree = Tree {
            files: files
                .iter()
                .map(|key| (relative(key), self.files.remove(key).expect("listed")))
                .collect(),
            directories: directories
                .iter()
                .map(|key| {
                    let directory = self.directories.remove(key).expect("listed");
                    (relative(key), directory)
                })
                .collect(),
        };
        assert!(!tree.files.is_empty() || !tree.directories.is_empty());
        tree
    }

    /// Puts a tree taken by [`Namespace::take_tree`] back at `root`.
    fn put_tree(&mut self, root: &Path, tree: Tree) {
        let at = |relative: &Path| match relative.as_os_str().is_empty() {
            true => root.to_path_buf(),
            false => root.join(relative),
        };
        for (relative, file) in tree.files {
            let previous = self.files.insert(at(&relative), file);
            assert!(previous.is_none());
        }
        for (relative, directory) in tree.directories {
            let previous = self.directories.insert(at(&relative), directory);
            assert!(previous.is_none());
        }
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
        assert!(!self.directories.contains_key(&path));
        let previous = self.files.insert(path, file);
        assert!(previous.is_none());
    }

    /// Creates the directory `path` and every missing one above it, as
    /// `mkdir -p` (`std::fs::create_dir_all`): `ENOTDIR` if a component is
    /// a file. Returns the changes, in order.
    pub(crate) fn create_dir_all(&mut self, path: &Path) -> Result<Vec<Change>, i32> {
        let mut changes = Vec::new();
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
            if !self.directories.contains_key(&current) {
                let directory = self.insert_directory(current.clone());
                changes.push(Change::Directory {
                    path: current.clone(),
                    directory,
                });
            }
        }
        Ok(changes)
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
            assert!(
                matches!(resolve(&ns, directory), Ok(Found::Directory(_))),
                "{directory}"
            );
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
        assert!(ns.create_dir_all(Path::new("d/sub/deeper")).is_ok());
        assert!(matches!(
            resolve(&ns, "d/sub/deeper/.."),
            Ok(Found::Directory(_))
        ));
    }
}
