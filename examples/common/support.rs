//! Shared by the examples: one error type for everything an example can
//! fail on (so `main` can use `?` across subsystems and a failure prints
//! through `Debug`), and a xenstore wait for nodes a peer or dom0 writes.

use core::time::Duration;
use xenpv::grant::GrantError;
use xenpv::mm::MemError;
use xenpv::vchan::ChannelError;
use xenpv::xenstore::{Client, Transport, XsError};

/// Why an example failed; `main` returning it crashes the domain and
/// prints it.
#[derive(Debug)]
#[allow(dead_code)] // each example uses some variants; all are read through Debug
pub enum Error {
    Grant(GrantError),
    Xs(XsError),
    Mem(MemError),
    Chan(ChannelError),
    /// Something did not happen in time.
    Timeout(&'static str),
    /// A check of the example failed.
    Check(&'static str),
}

impl From<GrantError> for Error {
    fn from(e: GrantError) -> Self {
        Error::Grant(e)
    }
}
impl From<XsError> for Error {
    fn from(e: XsError) -> Self {
        Error::Xs(e)
    }
}
impl From<MemError> for Error {
    fn from(e: MemError) -> Self {
        Error::Mem(e)
    }
}
impl From<ChannelError> for Error {
    fn from(e: ChannelError) -> Self {
        Error::Chan(e)
    }
}

/// Reads `key` once it exists (polling every 50 ms for up to 60 s).
#[allow(dead_code)]
pub fn wait_key<T: Transport>(xs: &mut Client<T>, key: &str) -> Result<alloc::string::String, Error> {
    let deadline = xenpv::time::now_ns() + 60_000_000_000;
    loop {
        match xs.read_string(key) {
            Ok(v) => return Ok(v),
            Err(XsError::Errno(_)) if xenpv::time::now_ns() < deadline => xenpv::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    }
}
