//! The tokio peer for UDP echo: a `current_thread` runtime with one task
//! that receives a datagram with `recv_from` and sends it back with
//! `send_to`, as tokio's own UDP echo example does. Buffers of 64 KiB, the
//! size of ringio's echo_server.
//!
//! ```text
//! cargo run --release -p ringio-bench --example bench_tokio_udp_echo -- --addr 127.0.0.1:7879
//! ```
//!
//! The first stdout line is `listening on ADDR (backend: tokio)`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::UdpSocket;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut addr: SocketAddr = "127.0.0.1:7879".parse().unwrap();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--addr", Some(value)) => match value.parse() {
                Ok(parsed) => addr = parsed,
                Err(_) => {
                    eprintln!("bench_tokio_udp_echo: bad address {value:?}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: bench_tokio_udp_echo [--addr HOST:PORT]");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current_thread runtime");
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_tokio_udp_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> io::Result<()> {
    let socket = UdpSocket::bind(addr).await?;
    let line = format!("listening on {} (backend: tokio)\n", socket.local_addr()?);
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (count, peer) = socket.recv_from(&mut buf).await?;
        // A full buffer at the sender drops the echo, as UDP may.
        let _ = socket.send_to(&buf[..count], peer).await;
    }
}
