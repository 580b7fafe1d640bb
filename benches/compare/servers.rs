//! The echo servers under comparison (ringio's echo_server in several
//! configurations, tokio, the bare io-uring loop and the C liburing server),
//! started once per workload and kept running, so runs can alternate
//! between them without restarts.

use std::io;

use crate::process::{self, Server};

/// How long a server may live, in case the harness dies without killing it
/// (PR_SET_PDEATHSIG covers that too; this is a second bound).
const SERVER_SECONDS_MAX: &str = "1800";

/// What a contender runs.
#[derive(Clone, Copy, Debug)]
enum Program {
    /// A release example of ringio or of this package.
    Example(&'static str),
    /// `benches/peers/uring_echo.c`, built by the harness.
    CLiburing,
}

/// One contender: a label for the tables and how to start it.
#[derive(Clone, Copy, Debug)]
pub struct Contender {
    pub label: &'static str,
    program: Program,
    /// `--backend` value for ringio's echo_server; `None` for the peers.
    backend: Option<&'static str>,
    /// More arguments for the server.
    extra: &'static [&'static str],
}

pub const RINGIO_IO_URING: Contender = Contender {
    label: "ringio (io_uring)",
    program: Program::Example("echo_server"),
    backend: Some("io_uring"),
    extra: &[],
};
pub const RINGIO_EPOLL: Contender = Contender {
    label: "ringio (epoll)",
    program: Program::Example("echo_server"),
    backend: Some("epoll"),
    extra: &[],
};
pub const TOKIO: Contender = Contender {
    label: "tokio current_thread",
    program: Program::Example("bench_tokio_echo"),
    backend: None,
    extra: &[],
};
pub const BARE: Contender = Contender {
    label: "bare io-uring loop",
    program: Program::Example("bench_uring_echo"),
    backend: None,
    extra: &[],
};
/// ringio's echo_server with `accept_multi` and `recv_multi` from a shared
/// buffer ring.
pub const RINGIO_MULTISHOT: Contender = Contender {
    label: "ringio multishot (io_uring)",
    program: Program::Example("echo_server"),
    backend: Some("io_uring"),
    extra: &["--recv", "multishot"],
};
/// ringio's echo_server on a ring with `COOP_TASKRUN`.
pub const RINGIO_COOP: Contender = Contender {
    label: "ringio coop_taskrun (io_uring)",
    program: Program::Example("echo_server"),
    backend: Some("io_uring"),
    extra: &["--ring", "coop"],
};
/// ringio's echo_server on a ring with no task-run set-up flags (the
/// default before they were measured).
pub const RINGIO_PLAIN: Contender = Contender {
    label: "ringio plain ring (io_uring)",
    program: Program::Example("echo_server"),
    backend: Some("io_uring"),
    extra: &["--ring", "plain"],
};
/// The C liburing server on a ring with default set-up flags.
pub const C_LIBURING: Contender = Contender {
    label: "c-liburing (default flags)",
    program: Program::CLiburing,
    backend: None,
    extra: &["--ring", "default"],
};
/// The C liburing server with SINGLE_ISSUER and DEFER_TASKRUN: the kernel
/// features of ringio's default ring.
pub const C_LIBURING_DEFER: Contender = Contender {
    label: "c-liburing (SINGLE_ISSUER|DEFER_TASKRUN)",
    program: Program::CLiburing,
    backend: None,
    extra: &["--ring", "defer"],
};
/// ringio's echo_server without io_uring's registered file table: every
/// operation on a plain fd, as before issue 16's item 3.
pub const RINGIO_UNREGISTERED: Contender = Contender {
    label: "ringio without registered files (io_uring)",
    program: Program::Example("echo_server"),
    backend: Some("io_uring"),
    extra: &["--registered-files", "0"],
};
pub const ALL: [Contender; 10] = [
    RINGIO_IO_URING,
    RINGIO_EPOLL,
    TOKIO,
    BARE,
    RINGIO_MULTISHOT,
    RINGIO_COOP,
    RINGIO_PLAIN,
    C_LIBURING,
    C_LIBURING_DEFER,
    RINGIO_UNREGISTERED,
];

impl Contender {
    /// Starts the server, or says why it is not available.
    ///
    /// ringio's echo_server is asked for its backend with `--backend`. A
    /// build without that flag rejects it: for io_uring, its default, it is
    /// started again without the flag (and must then say it runs io_uring);
    /// for any other backend the row is "not available".
    pub fn start(&self) -> Result<Server, String> {
        let binary = match self.program {
            Program::Example(example) => process::example_path(example),
            Program::CLiburing => {
                process::build_c_peer().map_err(|error| format!("not available: {error}"))?
            }
        };
        let mut args = vec!["--addr", "127.0.0.1:0", "--max-seconds", SERVER_SECONDS_MAX];
        let Some(backend) = self.backend else {
            args.extend(self.extra);
            return Server::start(self.label, &binary, &args).map_err(describe);
        };
        let mut with_flag = args.clone();
        with_flag.extend(["--backend", backend]);
        with_flag.extend(self.extra);
        let server = match Server::start(self.label, &binary, &with_flag) {
            Ok(server) => server,
            Err(error) if !error.to_string().contains("--backend") => return Err(describe(error)),
            Err(_) if backend != "io_uring" => {
                return Err(format!(
                    "not available: this echo_server build has no --backend flag (so no {backend} backend)"
                ))
            }
            Err(_) => {
                args.truncate(4);
                Server::start(self.label, &binary, &args).map_err(describe)?
            }
        };
        if server.backend != backend {
            return Err(format!(
                "not available: echo_server runs backend {:?}, not {backend:?}",
                server.backend
            ));
        }
        Ok(server)
    }
}

fn describe(error: io::Error) -> String {
    format!("not available: {error}")
}

/// Starts every contender; a failed one is reported, never fatal.
pub fn start_all() -> Vec<(Contender, Result<Server, String>)> {
    ALL.iter()
        .map(|contender| {
            let server = contender.start();
            match &server {
                Ok(server) => eprintln!(
                    "  {}: listening on {} (backend: {})",
                    contender.label, server.addr, server.backend
                ),
                Err(reason) => eprintln!("  {}: {reason}", contender.label),
            }
            (*contender, server)
        })
        .collect()
}
