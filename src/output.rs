//! What the command line prints on stdout, without `println!`'s panic when
//! the reader has gone: `alertgate incidents list | head -1` closes the
//! pipe after one line, and the next write fails with `EPIPE` (Rust ignores
//! SIGPIPE, so the write returns an error instead of killing the process).
//! The command then ends quietly with success, as `head` asked for no more.
//!
//! The client modules import these under the names `println` and `print`,
//! so every print path there goes through them; `clippy::print_stdout`
//! (denied in the library) catches a plain `println!` anywhere else.
use std::io::Write;

/// Write `text` (and a newline, or else flush) to stdout; exit the process
/// quietly if stdout is a closed pipe, and with failure on any other error.
pub fn write_stdout(text: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(text).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written.and_then(|()| if newline { Ok(()) } else { out.flush() }) {
        drop(out);
        gone(&e);
    }
}

fn gone(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("alertgate: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// `println!` that ends the process quietly when stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), true)
    };
}

/// `print!` that ends the process quietly when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), false)
    };
}

pub(crate) use {out, outln};
