//! Guest-side helpers of the test programs: one error type for whatever a
//! test can fail on (so `main` can use `?` and a failure prints through
//! `Debug`), `key=value` options from the command line, and waits for
//! xenstore nodes a peer or dom0 writes.

use core::time::Duration;
use xenpv::xenstore::{Client, Transport, XsError};

/// Why a test guest failed; `main` returning it crashes the domain and
/// prints it.
#[derive(Debug)]
pub enum Error {
    /// A xenpv call failed.
    Xen(xenpv::Error),
    /// Something did not happen in time.
    Timeout(&'static str),
    /// A check of the test failed.
    Check(&'static str),
}

macro_rules! from_xen {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Xen(e.into())
            }
        }
    )*};
}

from_xen!(
    xenpv::Error,
    xenpv::xenstore::XsError,
    xenpv::grant::GrantError,
    xenpv::mm::MemError,
    xenpv::vchan::ChannelError,
    xenpv::event::EventError
);

/// `Ok` if `ok`, else the failed check `what`.
pub fn check(ok: bool, what: &'static str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Check(what))
    }
}

/// `key=value` from the command line (xl `extra=`), parsed, or `default`.
pub fn arg<T: core::str::FromStr>(key: &str, default: T) -> T {
    xenpv::runtime::boot_info()
        .arg(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads `path` once it exists (polling every 20 ms, up to `timeout`).
pub fn wait_key_for<T: Transport>(
    xs: &mut Client<T>,
    path: &str,
    timeout: Duration,
) -> Result<alloc::string::String, XsError> {
    let deadline = xenpv::time::now_ns().saturating_add(timeout.as_nanos() as u64);
    loop {
        match xs.read_string(path) {
            Ok(v) => return Ok(v),
            Err(XsError::Errno(_)) if xenpv::time::now_ns() < deadline => {
                xenpv::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads `key` once it exists (up to 60 s).
pub fn wait_key<T: Transport>(
    xs: &mut Client<T>,
    key: &str,
) -> Result<alloc::string::String, Error> {
    Ok(wait_key_for(xs, key, Duration::from_secs(60))?)
}
