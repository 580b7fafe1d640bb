//! Printing to stdout when the reader may go away. `println!` panics when
//! a write fails, and the write fails with EPIPE once the reader has closed
//! the pipe (`kv_server --help | head -3`): Rust ignores SIGPIPE, which
//! would otherwise have ended the process. Unix tools stop quietly then, with
//! success; these helpers let the examples do the same.
//!
//! Shared by the examples, each declaring it with
//! `#[path = "…/common/stdout.rs"] mod stdout;`.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Whether stdout still has a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    /// The line was written.
    Yes,
    /// The reader closed the pipe (EPIPE): nothing printed from now on is
    /// read, so the caller should stop printing, and exit quietly once it
    /// has nothing else to do.
    PipeClosed,
}

/// Writes `line` and a newline to stdout, flushed.
///
/// # Errors
///
/// Any write error but a closed pipe, such as a full disk behind a
/// redirection (`> /dev/full`).
pub fn print_line(line: fmt::Arguments<'_>) -> io::Result<Printed> {
    let mut stdout = io::stdout().lock();
    let result = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match result {
        Ok(()) => Ok(Printed::Yes),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(Printed::PipeClosed),
        Err(error) => Err(error),
    }
}

/// Prints `usage` for `--help`. Success, also when the reader closed the
/// pipe before reading all of it; failure (and a message on stderr) for any
/// other write error.
pub fn print_help(program: &str, usage: &str) -> ExitCode {
    match print_line(format_args!("{usage}")) {
        Ok(Printed::Yes | Printed::PipeClosed) => ExitCode::SUCCESS,
        Err(error) => {
            // Not eprintln!, which panics if stderr is a closed pipe too.
            let _ = writeln!(
                io::stderr(),
                "{program}: writing the help to stdout: {error}"
            );
            ExitCode::FAILURE
        }
    }
}
