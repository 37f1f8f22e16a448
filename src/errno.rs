//! Errors of the hypercall channel: the `-errno` a hypercall returns
//! (public/errno.h). Per-operation statuses (a grant op's `GNTST_*`,
//! a xenstore error string) are separate types in their subsystems.

use core::fmt;

/// A Xen errno value, as returned negated by a failing hypercall.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $val:literal, $text:literal;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($val);
            )*

            /// The C name of this errno (`"EINVAL"`), if it is one Xen defines.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Looks an errno up by its C name, as xenstore error replies carry it.
            pub fn from_name(name: &str) -> Option<Errno> {
                match name {
                    $(stringify!($name) => Some(Errno($val)),)*
                    _ => None,
                }
            }

            fn text(self) -> &'static str {
                match self.0 {
                    $($val => $text,)*
                    _ => "unknown error",
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "I/O error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Arg list too long";
    ENOEXEC = 8, "Exec format error";
    EBADF = 9, "Bad file number";
    ECHILD = 10, "No child processes";
    EAGAIN = 11, "Try again";
    ENOMEM = 12, "Out of memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    EXDEV = 18, "Cross-device link";
    ENODEV = 19, "No such device";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    ENFILE = 23, "File table overflow";
    EMFILE = 24, "Too many open files";
    ENOSPC = 28, "No space left on device";
    EROFS = 30, "Read-only file system";
    EMLINK = 31, "Too many links";
    EDOM = 33, "Math argument out of domain of func";
    ERANGE = 34, "Math result not representable";
    EDEADLK = 35, "Resource deadlock would occur";
    ENAMETOOLONG = 36, "File name too long";
    ENOLCK = 37, "No record locks available";
    ENOSYS = 38, "Function not implemented";
    ENOTEMPTY = 39, "Directory not empty";
    ENODATA = 61, "No data available";
    ETIME = 62, "Timer expired";
    EBADMSG = 74, "Not a data message";
    EOVERFLOW = 75, "Value too large for defined data type";
    EILSEQ = 84, "Illegal byte sequence";
    ERESTART = 85, "Interrupted system call should be restarted";
    ENOTSOCK = 88, "Socket operation on non-socket";
    EMSGSIZE = 90, "Message too large";
    EOPNOTSUPP = 95, "Operation not supported on transport endpoint";
    EADDRINUSE = 98, "Address already in use";
    EADDRNOTAVAIL = 99, "Cannot assign requested address";
    ENOBUFS = 105, "No buffer space available";
    EISCONN = 106, "Transport endpoint is already connected";
    ENOTCONN = 107, "Transport endpoint is not connected";
    ETIMEDOUT = 110, "Connection timed out";
    ECONNREFUSED = 111, "Connection refused";
}

impl Errno {
    /// Interprets a hypercall return value: negative is `-errno`.
    pub fn check(ret: i64) -> Result<i64, Errno> {
        if ret < 0 {
            Err(Errno(ret.unsigned_abs().min(i32::MAX as u64) as i32))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.text(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_returns_become_errnos() {
        assert_eq!(Errno::check(0), Ok(0));
        assert_eq!(Errno::check(5), Ok(5));
        assert_eq!(Errno::check(-22), Err(Errno::EINVAL));
        assert_eq!(Errno::check(i64::MIN), Err(Errno(i32::MAX)));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Errno::from_name("EAGAIN"), Some(Errno::EAGAIN));
        assert_eq!(Errno::EACCES.name(), Some("EACCES"));
        assert_eq!(Errno::from_name("EWHAT"), None);
        assert_eq!(
            format!("{}", Errno::ENOENT),
            "No such file or directory (ENOENT)"
        );
        assert_eq!(format!("{:?}", Errno(999)), "Errno(999)");
    }
}
