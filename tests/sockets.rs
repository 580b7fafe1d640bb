//! Socket set-up a server or client needs: bind-before-connect and socket
//! options. On every backend, the kernel's answers being the reference.

#[macro_use]
mod util;

use std::cell::Cell;
use std::rc::Rc;

use ringio::{FileOptions, Handle, SocketOption, IO};
use util::Backend;

conformance!(
    a_socket_bound_before_connect_connects_from_that_port,
    binding_twice_or_to_a_taken_port_is_refused,
    socket_options_are_accepted_on_sockets_only,
);

fn errno_of<T>(result: &std::io::Result<T>) -> Option<i32> {
    result.as_ref().err().and_then(|error| error.raw_os_error())
}

fn a_socket_bound_before_connect_connects_from_that_port(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let address = io.local_addr(listener).unwrap();
    let client = io.open_socket(address).unwrap();
    io.bind(client, "127.0.0.1:0".parse().unwrap()).unwrap();
    let bound = io.local_addr(client).unwrap();
    assert_ne!(bound.port(), 0, "port 0 picks a port at bind time");
    let accepted: Rc<Cell<Option<Handle>>> = Rc::default();
    let slot = Rc::clone(&accepted);
    io.accept(listener, move |_, _, result| {
        slot.set(Some(result.unwrap()))
    });
    io.connect(client, address, |_, _, result| result.unwrap());
    io.run(&mut ()).unwrap();
    let server = accepted.get().unwrap();
    assert_eq!(
        io.peer_addr(server).unwrap(),
        bound,
        "the peer sees the bound address"
    );
    assert_eq!(io.local_addr(client).unwrap(), bound);
    for socket in [client, server, listener] {
        util::close_io(&mut io, &mut (), socket);
    }
}

fn binding_twice_or_to_a_taken_port_is_refused(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let taken = io.local_addr(listener).unwrap();
    let socket = io.open_socket(taken).unwrap();
    assert_eq!(errno_of(&io.bind(socket, taken)), Some(libc::EADDRINUSE));
    io.bind(socket, "127.0.0.1:0".parse().unwrap()).unwrap();
    let again = io.bind(socket, "127.0.0.1:0".parse().unwrap());
    assert_eq!(errno_of(&again), Some(libc::EINVAL));
    let v6 = io.bind(socket, "[::1]:0".parse().unwrap());
    assert!(errno_of(&v6).is_some(), "the other family is refused");
    util::close_io(&mut io, &mut (), socket);
    util::close_io(&mut io, &mut (), listener);
}

fn socket_options_are_accepted_on_sockets_only(backend: Backend) {
    let mut io: IO<()> = backend.io();
    let socket = io.open_socket("127.0.0.1:1".parse().unwrap()).unwrap();
    let options = [
        SocketOption::ReuseAddress(true),
        SocketOption::ReusePort(true),
        SocketOption::KeepAlive(true),
        SocketOption::SendBufferBytes(64 * 1024),
        SocketOption::RecvBufferBytes(64 * 1024),
        SocketOption::NoDelay(true),
    ];
    for option in options {
        io.set_option(socket, option)
            .unwrap_or_else(|error| panic!("{option:?}: {error}"));
    }
    let scratch = util::Scratch::new(backend, "sockopt");
    let file = io
        .open_file(scratch.path("file"), FileOptions::new().create(true))
        .unwrap();
    let refused = io.set_option(file, SocketOption::KeepAlive(true));
    assert_eq!(errno_of(&refused), Some(libc::ENOTSOCK));
    util::close_io(&mut io, &mut (), socket);
    util::close_io(&mut io, &mut (), file);
    let stale = io.set_option(socket, SocketOption::KeepAlive(true));
    assert_eq!(errno_of(&stale), Some(libc::EBADF));
}
