//! Registered buffers: `register_fixed_buffers`, `read_fixed` and
//! `write_fixed` with O_DIRECT, checking out and giving back, and bad
//! input, on every backend (and on io_uring with the registration
//! emulated, the path a kernel that refuses it takes).

#[macro_use]
mod util;

use std::cell::RefCell;
use std::rc::Rc;

use ringio::{Config, FileOptions, FixedBuf, FixedBufs, IO};
use util::Backend;

conformance!(
    write_fixed_then_read_fixed_round_trips_with_o_direct,
    emulated_registration_gives_the_same_results,
    buffers_are_checked_out_once_and_come_back_on_drop,
    bad_registrations_and_foreign_buffers_are_refused,
);

fn errno<T>(result: &std::io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

type Seen = Rc<RefCell<Vec<(std::io::Result<usize>, FixedBuf)>>>;

fn round_trip(backend: Backend, config: Config, name: &str) {
    let scratch = util::Scratch::new(backend, name);
    let mut io: IO<()> = backend.io_with(config);
    let set = io.register_fixed_buffers(4, 8192).unwrap();
    assert_eq!((set.count(), set.buffer_bytes(), set.free()), (4, 8192, 4));
    let options = FileOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .direct(true);
    let file = io.open_file(scratch.path("data"), options).unwrap();
    let data = util::pattern(8192, 9);
    let mut buf = set.take_any().unwrap();
    buf.as_mut_capacity().copy_from_slice(&data);
    buf.set_len(8192);
    let seen: Seen = Rc::default();
    let slot = Rc::clone(&seen);
    io.write_fixed(file, buf, 4096, move |_, _, result, buf| {
        slot.borrow_mut().push((result, buf))
    });
    io.run(&mut ()).unwrap();
    let (written, buf) = seen.borrow_mut().pop().unwrap();
    assert_eq!(written.unwrap(), 8192);
    assert_eq!(&buf[..], &data[..], "a written buffer comes back as it was");
    drop(buf);
    let into = set.take(2).unwrap();
    let slot = Rc::clone(&seen);
    io.read_fixed(file, into, 4096, move |_, _, result, buf| {
        slot.borrow_mut().push((result, buf))
    });
    io.run(&mut ()).unwrap();
    let (read, buf) = seen.borrow_mut().pop().unwrap();
    assert_eq!(read.unwrap(), 8192);
    assert_eq!(buf.index(), 2);
    assert_eq!(buf.len(), 8192);
    assert!(buf[..] == data[..], "the bytes written, read back");
    // Past the end: 0, and the buffer's length says so.
    let slot = Rc::clone(&seen);
    io.read_fixed(file, buf, 1 << 20, move |_, _, result, buf| {
        slot.borrow_mut().push((result, buf))
    });
    io.run(&mut ()).unwrap();
    let (read, buf) = seen.borrow_mut().pop().unwrap();
    assert_eq!((read.unwrap(), buf.len()), (0, 0));
}

fn write_fixed_then_read_fixed_round_trips_with_o_direct(backend: Backend) {
    round_trip(backend, Config::new(), "fixed");
}

fn emulated_registration_gives_the_same_results(backend: Backend) {
    round_trip(
        backend,
        Config::new().emulate_kernel_features(true),
        "fixed-emulated",
    );
}

fn buffers_are_checked_out_once_and_come_back_on_drop(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let set: FixedBufs = io.register_fixed_buffers(3, 4096).unwrap();
    let one = set.take(1).unwrap();
    assert!(set.take(1).is_none(), "checked out already");
    let others: Vec<FixedBuf> = std::iter::from_fn(|| set.take_any()).collect();
    assert_eq!(others.len(), 2);
    assert_eq!(set.free(), 0);
    assert!(set.take_any().is_none());
    drop(one);
    assert_eq!(set.free(), 1);
    assert_eq!(set.take(1).map(|buf| buf.index()), Some(1));
    drop(others);
    assert_eq!(set.free(), 3);
    assert!(set.take(3).is_none(), "no such buffer");
}

fn bad_registrations_and_foreign_buffers_are_refused(backend: Backend) {
    let scratch = util::Scratch::new(backend, "fixed-bad");
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    assert_eq!(
        errno(&io.register_fixed_buffers(0, 4096)),
        Some(libc::EINVAL)
    );
    assert_eq!(
        errno(&io.register_fixed_buffers(4, 1000)),
        Some(libc::EINVAL)
    );
    assert_eq!(errno(&io.register_fixed_buffers(4, 0)), Some(libc::EINVAL));
    let _set = io.register_fixed_buffers(2, 4096).unwrap();
    assert_eq!(
        errno(&io.register_fixed_buffers(2, 4096)),
        Some(libc::EBUSY)
    );
    let mut other: IO<()> = backend.io();
    let foreign = other.register_fixed_buffers(1, 4096).unwrap();
    let options = FileOptions::new().read(true).write(true).create(true);
    let file = io.open_file(scratch.path("data"), options).unwrap();
    let mut buf = foreign.take_any().unwrap();
    buf.set_len(4096);
    io.write_fixed(file, buf, 0, |_, seen, result, buf| {
        assert_eq!(buf.len(), 4096, "the buffer comes back");
        seen.push(errno(&result))
    });
    let empty = _set.take_any().unwrap();
    io.write_fixed(file, empty, 0, |_, seen, result, _| {
        seen.push(errno(&result))
    });
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    assert_eq!(seen, [Some(libc::EINVAL), Some(libc::EINVAL)]);
}
