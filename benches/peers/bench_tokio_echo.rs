//! The tokio peer in `cargo bench --bench compare`: a TCP echo server on a
//! `current_thread` runtime, written the way tokio's own echo example is (an
//! accept loop that spawns a task per connection; each task reads into a
//! buffer and `write_all`s it back).
//!
//! ```text
//! cargo run --release -p ringio-bench --example bench_tokio_echo -- --addr 127.0.0.1:0
//! ```
//!
//! Two departures from tokio's example, both so that no contender is
//! crippled and all do the same work: the buffer is 16 KiB (the size
//! ringio's echo_server and the bare io-uring server use, instead of 1 KiB),
//! and it is filled with `read_buf` into spare capacity, so tokio does not
//! zero it per connection (ringio's `Vec::with_capacity` does not either).
//! The listen backlog is 4096 and TCP_NODELAY is set, as in ringio's server.
//! The first stdout line is `listening on ADDR (backend: tokio)`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes one read may fill: the same as ringio's echo_server.
const BUFFER_BYTES: usize = 16 * 1024;
/// Pending connections the kernel queues: the same as ringio's echo_server.
const LISTEN_BACKLOG: u32 = 4096;
/// Back-off after an accept error such as EMFILE, as in ringio's server.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let (addr, max_seconds) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("bench_tokio_echo: {message}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build();
    let result = runtime.and_then(|runtime| runtime.block_on(serve(addr, max_seconds)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_tokio_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--addr HOST:PORT` (default 127.0.0.1:7879) and `--max-seconds N`.
fn parse_args() -> Result<(SocketAddr, Option<u64>), String> {
    let mut addr: SocketAddr = "127.0.0.1:7879".parse().expect("valid default");
    let mut max_seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => {
                addr = value
                    .parse()
                    .map_err(|_| format!("bad address {value:?}"))?
            }
            "--max-seconds" => {
                max_seconds = Some(value.parse().map_err(|_| format!("bad number {value:?}"))?)
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok((addr, max_seconds))
}

async fn serve(addr: SocketAddr, max_seconds: Option<u64>) -> io::Result<()> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let line = format!("listening on {} (backend: tokio)\n", listener.local_addr()?);
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    if let Some(seconds) = max_seconds {
        // A bound on the server's life, in case its parent dies without
        // killing it.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            std::process::exit(0);
        });
    }
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(echo(stream));
            }
            Err(error) => {
                eprintln!("bench_tokio_echo: accept: {error}; retrying shortly");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Reads whatever arrived and writes all of it back, until EOF or an error.
async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    loop {
        buf.clear();
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if stream.write_all(&buf).await.is_err() {
            return;
        }
    }
}

/// Ten thousand idle clients need ten thousand fds; raise the soft limit to
/// the hard one, as ringio's echo_server does.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        eprintln!(
            "bench_tokio_echo: setrlimit: {}",
            io::Error::last_os_error()
        );
    }
}
