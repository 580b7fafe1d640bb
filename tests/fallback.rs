//! io_uring refused for real. A child process (this test binary, re-run on
//! one test) installs a seccomp filter that makes `io_uring_setup` fail, as
//! Docker's default profile does (`EPERM`) or an old kernel would
//! (`ENOSYS`), then checks that `IO::new` lands on epoll, says why through
//! tracing, and serves a TCP round trip. Forcing io_uring must instead
//! surface the refusal.

use std::process::{Command, Output};

use ringio::{BackendKind, Handle, IO};

/// Set in the child: the errno the filter returns for `io_uring_setup`.
const CHILD_ERRNO_ENV: &str = "RINGIO_TEST_SECCOMP_ERRNO";

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// Makes `io_uring_setup` fail with `errno` on this thread (and threads it
/// starts); every other syscall is allowed.
fn refuse_io_uring_setup(errno: u32) {
    let load_word = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let mut program = [
        statement(load_word, 4), // seccomp_data.arch
        jump_if_equal(AUDIT_ARCH, 0, 3),
        statement(load_word, 0), // seccomp_data.nr
        jump_if_equal(libc::SYS_io_uring_setup as u32, 0, 1),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | errno),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments; no_new_privs lets an
    // unprivileged process install a filter.
    let result = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(result, 0, "PR_SET_NO_NEW_PRIVS");
    // SAFETY: `filter` points at `program`, both alive for the call; the
    // kernel copies the program.
    let result = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &filter as *const libc::sock_fprog,
        )
    };
    assert_eq!(
        result,
        0,
        "PR_SET_SECCOMP: {}",
        std::io::Error::last_os_error()
    );
}

#[derive(Default)]
struct Echo {
    echoed: Vec<u8>,
}

/// Accepts one connection, reads "ping" on it and echoes it back, all
/// through the loop; the client side uses std.
fn serve_one_round_trip(io: &mut IO<Echo>) -> Vec<u8> {
    let listener = io.listen("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let address = io.local_addr(listener).unwrap();
    io.accept(listener, |io, _, result| {
        let server: Handle = result.expect("accept");
        io.recv(server, Vec::with_capacity(16), move |io, _, result, buf| {
            result.expect("recv");
            io.send(server, buf, move |io, echo, result, buf| {
                result.expect("send");
                echo.echoed = buf;
                io.close(server, |_, _, result| result.unwrap());
            });
        });
    });
    let client = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(b"ping").unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    });
    let mut echo = Echo::default();
    io.run(&mut echo).unwrap();
    assert_eq!(echo.echoed, b"ping");
    io.close(listener, |_, _, result| result.unwrap());
    io.run(&mut echo).unwrap();
    client.join().unwrap()
}

/// The child's side; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(errno) = std::env::var(CHILD_ERRNO_ENV) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    refuse_io_uring_setup(errno.parse().unwrap());
    match IO::<Echo>::new() {
        Ok(mut io) => {
            let reply = serve_one_round_trip(&mut io);
            println!(
                "child: backend {}, reply {}",
                io.backend(),
                String::from_utf8_lossy(&reply)
            );
        }
        Err(error) => println!("child: IO::new failed: errno {:?}", error.raw_os_error()),
    }
}

fn run_child(errno: i32, forced_backend: Option<&str>) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ERRNO_ENV, errno.to_string())
        .env_remove(ringio::BACKEND_ENV);
    if let Some(backend) = forced_backend {
        command.env(ringio::BACKEND_ENV, backend);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "child failed: {output:?}");
    output
}

fn assert_fell_back_to_epoll(errno: i32, reason: &str) {
    let output = run_child(errno, None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains(&format!(
            "child: backend {}, reply ping",
            BackendKind::Epoll
        )),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let warnings: Vec<_> = stderr
        .lines()
        .filter(|line| line.contains("falling back to epoll"))
        .collect();
    assert_eq!(warnings.len(), 1, "one clear line: {stderr}");
    assert!(warnings[0].contains(reason), "{}", warnings[0]);
}

#[test]
fn seccomp_eperm_falls_back_to_epoll() {
    assert_fell_back_to_epoll(libc::EPERM, "refused by seccomp");
}

#[test]
fn seccomp_enosys_falls_back_to_epoll() {
    assert_fell_back_to_epoll(libc::ENOSYS, "no io_uring");
}

#[test]
fn forced_io_uring_reports_the_refusal_instead_of_falling_back() {
    let output = run_child(libc::EPERM, Some("io_uring"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "child: IO::new failed: errno {:?}",
            Some(libc::EPERM)
        )),
        "{stdout}"
    );
}

#[test]
fn forced_epoll_skips_io_uring_even_where_it_works() {
    let mut io: IO<Echo> =
        IO::with_config(ringio::Config::new().backend(BackendKind::Epoll)).unwrap();
    assert_eq!(io.backend(), BackendKind::Epoll);
    assert_eq!(serve_one_round_trip(&mut io), b"ping");
}

#[test]
fn an_unknown_backend_name_is_a_clear_error() {
    let error = "kqueue".parse::<BackendKind>().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error
        .to_string()
        .contains("expected \"io_uring\" or \"epoll\""));
}
