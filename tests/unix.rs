//! Unix-domain sockets: stream listeners and connections by path and by
//! abstract name, and stream pairs, on every backend (the kernel's answers
//! being the simulator's reference); datagram sockets on the kernel
//! backends (the simulator says `EOPNOTSUPP` for them).

#[macro_use]
mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use ringio::{Address, Handle, Shutdown, SocketType, UnixAddr, UnlinkFlags, IO};
use util::Backend;

conformance!(
    unix_datagrams_exist_on_the_kernel_and_are_eopnotsupp_in_the_simulator,
    unix_stream_by_path_connects_and_echoes,
    unix_stream_by_abstract_name_connects_and_reports_names,
    unix_pair_stream_shutdown_write_is_eof_for_the_peer,
    connecting_to_a_missing_path_is_enoent,
    a_closed_listener_leaves_its_path_taken_and_its_abstract_name_free,
    closing_with_unread_data_resets_the_peer;
    kernel_only:
    // The simulator has Unix streams only.
    unix_datagrams_carry_their_sender_and_keep_boundaries,
);

fn errno<T>(result: &io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

fn run_until<C>(io: &mut IO<C>, ctx: &mut C, mut done: impl FnMut(&C) -> bool) {
    for _ in 0..10_000 {
        if done(ctx) {
            return;
        }
        io.run_for_ns(ctx, 1_000_000).unwrap();
    }
    panic!("the loop never got there");
}

/// Listens on `address`, connects to it, accepts: (client, server).
fn unix_pair_through(io: &mut IO<()>, address: &UnixAddr) -> (Handle, Handle) {
    let listener = io.listen_unix(address, 16).unwrap();
    let client = io.open_unix_stream().unwrap();
    let accepted: Rc<Cell<Option<Handle>>> = Rc::default();
    let slot = Rc::clone(&accepted);
    io.accept(listener, move |_, _, result| {
        slot.set(Some(result.unwrap()))
    });
    io.connect_unix(client, address, |_, _, result| result.unwrap());
    io.run(&mut ()).unwrap();
    io.close(listener, |_, _, result| result.unwrap());
    io.run(&mut ()).unwrap();
    (client, accepted.get().unwrap())
}

fn echo_once(io: &mut IO<()>, client: Handle, server: Handle) {
    let got = Rc::new(RefCell::new(Vec::new()));
    io.send(client, b"over unix".to_vec(), |_, _, result, _| {
        assert_eq!(result.unwrap(), 9)
    });
    let slot = Rc::clone(&got);
    io.recv(server, Vec::with_capacity(64), move |_, _, result, buf| {
        result.unwrap();
        *slot.borrow_mut() = buf;
    });
    io.run(&mut ()).unwrap();
    assert_eq!(*got.borrow(), b"over unix");
}

fn unix_stream_by_path_connects_and_echoes(backend: Backend) {
    let scratch = util::Scratch::new(backend, "unix-path");
    let path = scratch.path("echo.sock");
    let address = UnixAddr::path(&path).unwrap();
    let mut io: IO<()> = backend.io();
    let (client, server) = unix_pair_through(&mut io, &address);
    echo_once(&mut io, client, server);
    assert_eq!(io.local_address(server).unwrap(), Address::Unix(address));
    assert_eq!(io.peer_address(client).unwrap(), Address::Unix(address));
    assert!(matches!(io.peer_address(server).unwrap(), Address::Unix(peer) if peer.is_unnamed()));
    // The path stays bound while the file exists: a second listener is refused.
    let again = io.listen_unix(&address, 1);
    assert_eq!(errno(&again), Some(libc::EADDRINUSE));
}

fn unix_stream_by_abstract_name_connects_and_reports_names(backend: Backend) {
    let name = format!("ringio-test-{}-{backend:?}", std::process::id());
    let address = UnixAddr::abstract_name(name.as_bytes()).unwrap();
    let mut io: IO<()> = backend.io();
    let (client, server) = unix_pair_through(&mut io, &address);
    echo_once(&mut io, server, client);
    let local = io.local_address(server).unwrap();
    assert_eq!(
        local.as_unix().and_then(UnixAddr::as_abstract_name),
        Some(name.as_bytes())
    );
    assert_eq!(
        io.local_addr(server).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EAFNOSUPPORT))
    );
}

fn unix_pair_stream_shutdown_write_is_eof_for_the_peer(backend: Backend) {
    let mut io: IO<Vec<usize>> = backend.io();
    let (a, b) = io.unix_pair(SocketType::Stream).unwrap();
    io.send(a, b"last words".to_vec(), |_, _, result, _| {
        result.unwrap();
    });
    // No TCP options on a Unix socket.
    assert_eq!(errno(&io.set_nodelay(a, true)), Some(libc::EOPNOTSUPP));
    io.shutdown(a, Shutdown::Write, |_, _, result| result.unwrap());
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    for _ in 0..2 {
        io.recv(b, Vec::with_capacity(64), |_, seen, result, _| {
            seen.push(result.unwrap())
        });
        io.run(&mut seen).unwrap();
    }
    assert_eq!(seen, [10, 0], "the data, then the end of the stream");
}

fn unix_datagrams_carry_their_sender_and_keep_boundaries(backend: Backend) {
    #[derive(Default)]
    struct Seen {
        got: Vec<(Vec<u8>, Option<Address>)>,
    }
    let scratch = util::Scratch::new(backend, "unix-dgram");
    let server_name = UnixAddr::path(scratch.path("server.sock")).unwrap();
    let client_name = UnixAddr::path(scratch.path("client.sock")).unwrap();
    let mut io: IO<Seen> = backend.io();
    let server = io.open_unix_datagram(Some(&server_name)).unwrap();
    let client = io.open_unix_datagram(Some(&client_name)).unwrap();
    let anonymous = io.open_unix_datagram(None).unwrap();
    io.send_to(client, b"one".to_vec(), server_name, |_, _, r, _| {
        assert_eq!(r.unwrap(), 3)
    });
    io.send_to(anonymous, b"two!".to_vec(), server_name, |_, _, r, _| {
        assert_eq!(r.unwrap(), 4)
    });
    let mut seen = Seen::default();
    for _ in 0..2 {
        io.recv_from(server, Vec::with_capacity(64), |_, seen, result, buf| {
            let (_, peer) = result.unwrap();
            seen.got.push((buf, peer));
        });
    }
    run_until(&mut io, &mut seen, |seen| seen.got.len() == 2);
    assert_eq!(
        seen.got[0],
        (b"one".to_vec(), Some(Address::Unix(client_name)))
    );
    assert_eq!(
        seen.got[1],
        (b"two!".to_vec(), None),
        "an unnamed sender has no address"
    );
}

fn connecting_to_a_missing_path_is_enoent(backend: Backend) {
    let scratch = util::Scratch::new(backend, "unix-missing");
    let address = UnixAddr::path(scratch.path("nobody.sock")).unwrap();
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let client = io.open_unix_stream().unwrap();
    io.connect_unix(client, &address, |_, seen, result| {
        seen.push(errno(&result))
    });
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    assert_eq!(seen, [Some(libc::ENOENT)]);
}

fn unix_datagrams_exist_on_the_kernel_and_are_eopnotsupp_in_the_simulator(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let expected = if backend.is_kernel() {
        None
    } else {
        Some(libc::EOPNOTSUPP)
    };
    assert_eq!(errno(&io.open_unix_datagram(None)), expected);
    assert_eq!(errno(&io.unix_pair(SocketType::Datagram)), expected);
}

fn a_closed_listener_leaves_its_path_taken_and_its_abstract_name_free(backend: Backend) {
    let scratch = util::Scratch::new(backend, "unix-stale");
    let path = UnixAddr::path(scratch.path("stale.sock")).unwrap();
    let name = format!("ringio-stale-{}-{backend:?}", std::process::id());
    let name = UnixAddr::abstract_name(name.as_bytes()).unwrap();
    let mut io: IO<Vec<Option<i32>>> = backend.io();
    let mut seen = Vec::new();
    for address in [path, name] {
        let listener = io.listen_unix(&address, 1).unwrap();
        io.close(listener, |_, _, result| result.unwrap());
        io.run(&mut seen).unwrap();
        let client = io.open_unix_stream().unwrap();
        io.connect_unix(client, &address, |_, seen, result| {
            seen.push(errno(&result))
        });
    }
    io.run(&mut seen).unwrap();
    // The socket file is still there, with nobody behind it.
    assert_eq!(seen, [Some(libc::ECONNREFUSED), Some(libc::ECONNREFUSED)]);
    assert_eq!(errno(&io.listen_unix(&path, 1)), Some(libc::EADDRINUSE));
    assert_eq!(
        errno(&io.listen_unix(&name, 1)),
        None,
        "an abstract name is free"
    );
    // Unlinking the socket file frees the path.
    let file = path.as_path().unwrap().to_owned();
    io.unlinkat(&file, UnlinkFlags::FILE, |_, seen, result| {
        seen.push(errno(&result))
    });
    seen.clear();
    io.run(&mut seen).unwrap();
    assert_eq!(seen, [None]);
    assert_eq!(errno(&io.listen_unix(&path, 1)), None);
}

fn closing_with_unread_data_resets_the_peer(backend: Backend) {
    let mut io: IO<Vec<Result<usize, i32>>> = backend.io();
    let (a, b) = io.unix_pair(SocketType::Stream).unwrap();
    io.send(a, b"never read".to_vec(), |_, _, result, _| {
        result.unwrap();
    });
    let mut seen = Vec::new();
    io.run(&mut seen).unwrap();
    // b closes with a's bytes unread: a's next receive learns of it.
    io.close(b, |_, _, result| result.unwrap());
    io.run(&mut seen).unwrap();
    io.recv(a, Vec::with_capacity(16), |_, seen, result, _| {
        seen.push(result.map_err(|e| e.raw_os_error().unwrap()))
    });
    io.run(&mut seen).unwrap();
    assert_eq!(seen, [Err(libc::ECONNRESET)]);
}
