//! SIGTERM and SIGINT; the one module with `unsafe` in the crate.
//!
//! std has no signal API, so this module declares two libc functions (`signal`, `write`)
//! and installs a handler that writes the signal number into a pipe (the self-pipe trick).
//! A thread blocked in [`Signals::wait`] reads it and lets `main` finish a write in progress
//! and exit 0. The handler does nothing but one `write(2)`, which is async-signal-safe.
//! Installing a handler matters as PID 1 in a container, where the kernel ignores
//! signals that have no handler.
#![allow(unsafe_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::atomic::{AtomicI32, Ordering};

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// The write end of the pipe, read by the handler; -1 until [`install`].
static PIPE_WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

extern "C" fn on_signal(signum: i32) {
    let fd = PIPE_WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signum as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. A full
        // pipe (65,536 unread signals) drops the byte, which loses nothing: one is enough.
        unsafe {
            write(fd, &byte, 1);
        }
    }
}

/// The read end: blocks until a signal arrives.
pub struct Signals {
    reader: std::io::PipeReader,
}

/// Installs the SIGTERM and SIGINT handlers. Call once, early in `main`.
pub fn install() -> std::io::Result<Signals> {
    let (reader, writer) = std::io::pipe()?;
    // The write end lives as long as the process: the handler may run at any time.
    PIPE_WRITE_FD.store(writer.into_raw_fd(), Ordering::SeqCst);
    const SIG_ERR: usize = usize::MAX;
    for sig in [SIGTERM, SIGINT] {
        // SAFETY: `on_signal` is an `extern "C" fn(i32)` that only calls write(2).
        let previous = unsafe { signal(sig, on_signal as extern "C" fn(i32) as usize) };
        if previous == SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    debug_assert!(reader.as_raw_fd() >= 0);
    Ok(Signals { reader })
}

impl Signals {
    /// Blocks until SIGTERM or SIGINT; returns the signal number.
    pub fn wait(&mut self) -> i32 {
        let mut b = [0u8; 1];
        loop {
            match self.reader.read(&mut b) {
                Ok(1) => return i32::from(b[0]),
                Ok(_) => return SIGTERM, // cannot happen: the write end is never closed
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return SIGTERM,
            }
        }
    }
}

/// The signal's name, for the log.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
