//! The simulator's crash model for metadata, one rule per test: directory
//! entries (files created, directories made, renames, unlinks) are durable
//! only once their directory is fsynced, and a crash keeps a prefix of the
//! changes that are not (the journal commits in order); a file's length set
//! by `ftruncate` or `fallocate` is durable only once the file is fsynced;
//! a rename is atomic. `DiskOptions::crash_metadata_lost_probability` says
//! how often a change that is not durable is lost; docs/simulation.md
//! ("Disk") states the rules.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ringio::sim::{NodeId, Probability, SimOptions, Simulator};
use ringio::{FallocateFlags, FileOptions, Handle, RenameFlags, UnlinkFlags, IO};

/// A one-node world whose crashes lose each metadata change that is not
/// durable with `lost`, and no data write that is (the data model is
/// another test's).
struct Node {
    sim: Simulator,
    node: NodeId,
    io: IO<()>,
}

impl Node {
    fn new(seed: u64, lost: Probability) -> Node {
        let mut options = SimOptions::default().without_faults();
        options.disk.crash_metadata_lost_probability = lost;
        options.disk.crash_lost_probability = Probability::NEVER;
        options.disk.crash_torn_probability = Probability::NEVER;
        let mut sim = Simulator::new(seed, options);
        let node = sim.add_node("db");
        let io = sim.io(node).unwrap();
        Node { sim, node, io }
    }

    /// Crashes the node and starts a new process on it.
    fn crash(&mut self) {
        self.sim.crash(self.node);
        let io = self.sim.io(self.node).unwrap();
        drop(std::mem::replace(&mut self.io, io));
    }

    fn run(&mut self) {
        self.io.run(&mut ()).unwrap();
    }

    fn open(&mut self, path: &str, options: FileOptions) -> Result<Handle, i32> {
        self.io
            .open_file(path, options)
            .map_err(|error| error.raw_os_error().unwrap())
    }

    /// Creates `path` with `data`, fsyncing the file (not its directory).
    fn create(&mut self, path: &str, data: &[u8]) {
        let file = self.open(path, FileOptions::new().create(true)).unwrap();
        self.write_fsync(file, data);
        self.close(file);
    }

    fn write_fsync(&mut self, file: Handle, data: &[u8]) {
        self.io.chain(|io| {
            io.write(file, data.to_vec(), 0, |_, _, result, _| {
                result.unwrap();
            });
            io.fsync(file, |_, _, result| result.unwrap());
        });
        self.run();
    }

    fn close(&mut self, handle: Handle) {
        self.io.close(handle, |_, _, result| result.unwrap());
        self.run();
    }

    /// Fsyncs the directory `path`.
    fn fsync_dir(&mut self, path: &str) {
        let dir = self.open(path, FileOptions::new().write(false)).unwrap();
        self.io.fsync(dir, |_, _, result| result.unwrap());
        self.run();
        self.close(dir);
    }

    fn mkdir(&mut self, path: &str) {
        self.io.mkdirat(path, |_, _, result| result.unwrap());
        self.run();
    }

    fn rename(&mut self, old: &str, new: &str) {
        self.io
            .renameat(old, new, RenameFlags::REPLACE, |_, _, result| {
                result.unwrap()
            });
        self.run();
    }

    fn unlink(&mut self, path: &str) {
        self.io
            .unlinkat(path, UnlinkFlags::FILE, |_, _, result| result.unwrap());
        self.run();
    }

    /// What `path` holds, or the errno of opening it.
    fn contents(&mut self, path: &str) -> Result<Vec<u8>, i32> {
        let file = self.open(path, FileOptions::new().write(false))?;
        let data: Rc<RefCell<Vec<u8>>> = Rc::default();
        let out = Rc::clone(&data);
        self.io.read(
            file,
            Vec::with_capacity(1 << 16),
            0,
            move |_, _, result, buf| {
                result.unwrap();
                *out.borrow_mut() = buf;
            },
        );
        self.run();
        self.close(file);
        let data = data.borrow().clone();
        Ok(data)
    }

    fn len(&mut self, path: &str) -> u64 {
        let file = self.open(path, FileOptions::new().write(false)).unwrap();
        let len: Rc<RefCell<u64>> = Rc::default();
        let out = Rc::clone(&len);
        self.io.statx(file, move |_, _, result| {
            *out.borrow_mut() = result.unwrap().size_bytes;
        });
        self.run();
        self.close(file);
        let len = *len.borrow();
        len
    }
}

const ALWAYS: Probability = Probability::ALWAYS;

#[test]
fn a_created_file_is_gone_after_a_crash_unless_its_directory_was_fsynced() {
    let mut node = Node::new(1, ALWAYS);
    node.create("segment-1", b"fsynced data");
    node.crash();
    assert_eq!(node.contents("segment-1"), Err(libc::ENOENT));
    node.create("segment-2", b"fsynced data");
    node.fsync_dir(".");
    node.crash();
    assert_eq!(node.contents("segment-2"), Ok(b"fsynced data".to_vec()));
}

#[test]
fn a_file_s_data_can_be_durable_while_its_name_is_not() {
    // The file's fsync made its data durable; its name needed the
    // directory's. After the crash the data is unreachable.
    let mut node = Node::new(2, ALWAYS);
    let file = node.open("log", FileOptions::new().create(true)).unwrap();
    node.write_fsync(file, b"acknowledged");
    node.crash();
    assert_eq!(node.contents("log"), Err(libc::ENOENT));
}

#[test]
fn an_unlink_is_undone_by_a_crash_until_the_directory_is_fsynced() {
    let mut node = Node::new(3, ALWAYS);
    node.create("old-segment", b"still here");
    node.fsync_dir(".");
    node.unlink("old-segment");
    assert_eq!(node.contents("old-segment"), Err(libc::ENOENT));
    node.crash();
    assert_eq!(node.contents("old-segment"), Ok(b"still here".to_vec()));
    node.unlink("old-segment");
    node.fsync_dir(".");
    node.crash();
    assert_eq!(node.contents("old-segment"), Err(libc::ENOENT));
}

#[test]
fn a_directory_fsync_makes_every_namespace_change_before_its_own_durable() {
    // The journal commits in order: fsyncing `d` commits `mkdir d` (a
    // change to the root) and everything logged before the last change to
    // `d`, but nothing after it.
    let mut node = Node::new(4, ALWAYS);
    node.create("before", b"1");
    node.mkdir("d");
    node.create("d/inside", b"2");
    node.create("after", b"3");
    node.fsync_dir("d");
    node.crash();
    assert_eq!(node.contents("before"), Ok(b"1".to_vec()));
    assert_eq!(node.contents("d/inside"), Ok(b"2".to_vec()));
    assert_eq!(node.contents("after"), Err(libc::ENOENT));
}

#[test]
fn a_crash_keeps_a_prefix_of_the_namespace_changes_never_a_later_one_alone() {
    let mut outcomes = BTreeMap::new();
    for seed in 0..200 {
        let mut node = Node::new(seed, Probability::percent(50));
        for name in ["a", "b", "c"] {
            node.create(name, name.as_bytes());
        }
        node.crash();
        let present: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|name| node.contents(name).is_ok())
            .collect();
        assert!(
            present.windows(2).all(|pair| pair[0] || !pair[1]),
            "seed {seed}: {present:?} is not a prefix"
        );
        *outcomes
            .entry(present.iter().filter(|&&kept| kept).count())
            .or_insert(0) += 1;
    }
    assert_eq!(
        outcomes.len(),
        4,
        "every prefix length occurs: {outcomes:?}"
    );
}

#[test]
fn a_rename_is_atomic_over_a_crash() {
    let mut outcomes = BTreeMap::new();
    for seed in 0..1_000 {
        let mut node = Node::new(seed, Probability::percent(50));
        node.create("snapshot", b"old snapshot");
        node.create("snapshot.tmp", b"new snapshot");
        node.fsync_dir(".");
        node.rename("snapshot.tmp", "snapshot");
        node.crash();
        let target = node.contents("snapshot");
        let temporary = node.contents("snapshot.tmp");
        let outcome = match (target, temporary) {
            (Ok(old), Ok(new)) if old == b"old snapshot" && new == b"new snapshot" => "undone",
            (Ok(new), Err(libc::ENOENT)) if new == b"new snapshot" => "kept",
            other => panic!("seed {seed}: neither the old nor the new state: {other:?}"),
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    assert_eq!(outcomes.len(), 2, "both outcomes occur: {outcomes:?}");
}

#[test]
fn a_rename_made_durable_by_a_directory_fsync_survives() {
    let mut node = Node::new(5, ALWAYS);
    node.create("snapshot.tmp", b"new");
    node.fsync_dir(".");
    node.rename("snapshot.tmp", "snapshot");
    node.fsync_dir(".");
    node.crash();
    assert_eq!(node.contents("snapshot"), Ok(b"new".to_vec()));
    assert_eq!(node.contents("snapshot.tmp"), Err(libc::ENOENT));
}

#[test]
fn a_truncate_is_durable_only_once_the_file_is_fsynced() {
    let mut node = Node::new(6, ALWAYS);
    node.create("log", &[7; 8192]);
    node.fsync_dir(".");
    let file = node.open("log", FileOptions::new()).unwrap();
    node.io.ftruncate(file, 100, |_, _, result| result.unwrap());
    node.run();
    assert_eq!(node.len("log"), 100);
    node.close(file);
    node.crash();
    assert_eq!(node.len("log"), 8192, "the crash undid the truncate");
    let file = node.open("log", FileOptions::new()).unwrap();
    node.io.ftruncate(file, 100, |_, _, result| result.unwrap());
    node.io.fdatasync(file, |_, _, result| result.unwrap());
    node.run();
    node.close(file);
    node.crash();
    assert_eq!(
        node.contents("log"),
        Ok(vec![7; 100]),
        "fdatasync made it durable"
    );
}

#[test]
fn an_fallocate_extension_is_durable_only_once_the_file_is_fsynced() {
    let mut node = Node::new(7, ALWAYS);
    node.create("data", b"head");
    node.fsync_dir(".");
    let file = node.open("data", FileOptions::new()).unwrap();
    node.io.fallocate(
        file,
        FallocateFlags::ALLOCATE,
        0,
        1 << 20,
        |_, _, result| result.unwrap(),
    );
    node.run();
    assert_eq!(node.len("data"), 1 << 20);
    node.close(file);
    node.crash();
    assert_eq!(node.len("data"), 4);
    let file = node.open("data", FileOptions::new()).unwrap();
    node.io.fallocate(
        file,
        FallocateFlags::ALLOCATE,
        0,
        1 << 20,
        |_, _, result| result.unwrap(),
    );
    node.io.fsync(file, |_, _, result| result.unwrap());
    node.run();
    node.close(file);
    node.crash();
    assert_eq!(node.len("data"), 1 << 20);
}

#[test]
fn with_the_knob_at_never_every_metadata_change_survives() {
    assert_ne!(
        SimOptions::default()
            .without_faults()
            .disk
            .crash_metadata_lost_probability,
        Probability::NEVER,
        "a crash's effect, not a fault: without_faults keeps it"
    );
    let mut node = Node::new(8, Probability::NEVER);
    node.create("never-synced", b"kept");
    let file = node.open("never-synced", FileOptions::new()).unwrap();
    node.io.ftruncate(file, 2, |_, _, result| result.unwrap());
    node.run();
    node.close(file);
    node.crash();
    assert_eq!(node.contents("never-synced"), Ok(b"ke".to_vec()));
}
