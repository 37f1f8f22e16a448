//! Framing of xenstore messages (public/io/xs_wire.h, docs/misc/xenstore.txt):
//! the `xsd_sockmsg` header, request payloads, and strict parsing of
//! reply payloads. Everything a reply contains is checked here: a length
//! over `XENSTORE_PAYLOAD_MAX`, an unknown type, a missing NUL or invalid
//! UTF-8 becomes a [`Malformed`] error, never a panic.

use super::{Access, Malformed, Perm, XsError};
use crate::abi::xenstore::{
    msg, xsd_sockmsg, HEADER_SIZE, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX,
};
use crate::errno::Errno;
use crate::types::DomId;
use alloc::string::String;
use alloc::vec::Vec;

/// Encodes a header as the 16 little-endian bytes on the wire.
pub fn encode_header(h: &xsd_sockmsg) -> [u8; HEADER_SIZE] {
    let mut b = [0u8; HEADER_SIZE];
    b[0..4].copy_from_slice(&h.type_.to_le_bytes());
    b[4..8].copy_from_slice(&h.req_id.to_le_bytes());
    b[8..12].copy_from_slice(&h.tx_id.to_le_bytes());
    b[12..16].copy_from_slice(&h.len.to_le_bytes());
    b
}

/// Decodes a header. Only the length is checked here (a longer payload
/// cannot be framed, so the stream is lost); the type is checked by
/// [`check_type`] once the payload has been consumed.
pub fn decode_header(b: &[u8; HEADER_SIZE]) -> Result<xsd_sockmsg, Malformed> {
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let h = xsd_sockmsg {
        type_: word(0),
        req_id: word(4),
        tx_id: word(8),
        len: word(12),
    };
    if h.len as usize > XENSTORE_PAYLOAD_MAX {
        return Err(Malformed::PayloadTooLong(h.len));
    }
    Ok(h)
}

/// Whether `ty` is a message type of the protocol.
pub fn check_type(ty: u32) -> Result<(), Malformed> {
    // 20 was XS_RESTRICT, removed from the protocol.
    if ty >= msg::XS_TYPE_COUNT || ty == 20 {
        return Err(Malformed::UnknownType(ty));
    }
    Ok(())
}

/// Builds one request: header plus the concatenation of `parts`.
pub fn encode_request(
    ty: u32,
    req_id: u32,
    tx_id: u32,
    parts: &[&[u8]],
) -> Result<Vec<u8>, XsError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(XsError::RequestTooLong(len));
    }
    let mut out = Vec::with_capacity(HEADER_SIZE + len);
    out.extend_from_slice(&encode_header(&xsd_sockmsg {
        type_: ty,
        req_id,
        tx_id,
        len: len as u32,
    }));
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Checks a path or token the caller wants to send: no NUL inside, not
/// empty, not longer than `XENSTORE_ABS_PATH_MAX`.
pub fn check_path(s: &str) -> Result<(), XsError> {
    if s.is_empty() || s.len() > XENSTORE_ABS_PATH_MAX || s.as_bytes().contains(&0) {
        return Err(XsError::InvalidPath);
    }
    Ok(())
}

fn utf8(b: &[u8]) -> Result<&str, Malformed> {
    core::str::from_utf8(b).map_err(|_| Malformed::InvalidUtf8)
}

/// A payload that must be exactly one NUL-terminated string.
pub fn parse_string(payload: &[u8]) -> Result<&str, Malformed> {
    match payload.split_last() {
        Some((0, body)) if !body.contains(&0) => utf8(body),
        _ => Err(Malformed::MissingNul),
    }
}

/// A payload of NUL-terminated strings (directory listing, watch event,
/// permissions). An empty payload is an empty list.
pub fn parse_strings(payload: &[u8]) -> Result<Vec<&str>, Malformed> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let Some((0, body)) = payload.split_last() else {
        return Err(Malformed::MissingNul);
    };
    body.split(|&b| b == 0).map(utf8).collect()
}

/// The error an `XS_ERROR` reply names (`"ENOENT\0"`).
pub fn parse_error(payload: &[u8]) -> XsError {
    match parse_string(payload) {
        Ok(name) => match Errno::from_name(name) {
            Some(e) => XsError::Errno(e),
            None => XsError::Malformed(Malformed::UnknownErrorName),
        },
        Err(m) => XsError::Malformed(m),
    }
}

/// A decimal number in a NUL-terminated string (transaction ids, domids).
pub fn parse_u32(s: &str) -> Result<u32, Malformed> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::BadNumber);
    }
    s.parse().map_err(|_| Malformed::BadNumber)
}

/// An `XS_WATCH_EVENT` payload: `path\0token\0`.
pub fn parse_watch_event(payload: &[u8]) -> Result<(String, String), Malformed> {
    let parts = parse_strings(payload)?;
    match parts.as_slice() {
        [path, token, ..] => Ok((String::from(*path), String::from(*token))),
        _ => Err(Malformed::MissingNul),
    }
}

/// One permission as the protocol spells it: `n0`, `r5`, `w3`, `b7`.
pub fn encode_perm(p: &Perm) -> String {
    let c = match p.access {
        Access::None => 'n',
        Access::Read => 'r',
        Access::Write => 'w',
        Access::ReadWrite => 'b',
    };
    alloc::format!("{c}{}", p.domid.0)
}

/// Parses one permission string.
pub fn parse_perm(s: &str) -> Result<Perm, Malformed> {
    let mut chars = s.chars();
    let access = match chars.next() {
        Some('n') => Access::None,
        Some('r') => Access::Read,
        Some('w') => Access::Write,
        Some('b') => Access::ReadWrite,
        _ => return Err(Malformed::BadPermission),
    };
    let id = parse_u32(chars.as_str()).map_err(|_| Malformed::BadPermission)?;
    let domid = u16::try_from(id).map_err(|_| Malformed::BadPermission)?;
    Ok(Perm {
        domid: DomId(domid),
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_little_endian() {
        let h = xsd_sockmsg {
            type_: msg::XS_WRITE,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 4096,
        };
        let b = encode_header(&h);
        assert_eq!(&b[..8], &[11, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(decode_header(&b), Ok(h));
        let mut big = b;
        big[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(decode_header(&big), Err(Malformed::PayloadTooLong(4097)));
        big[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_header(&big),
            Err(Malformed::PayloadTooLong(u32::MAX))
        );
    }

    #[test]
    fn requests_concatenate_parts_and_refuse_oversize() {
        let r = encode_request(msg::XS_WRITE, 9, 3, &[b"a/b\0", b"value"]).unwrap();
        assert_eq!(r.len(), 16 + 9);
        assert_eq!(decode_header(r[..16].try_into().unwrap()).unwrap().len, 9);
        assert_eq!(&r[16..], b"a/b\0value");
        let big = [b'x'; 4097];
        assert_eq!(
            encode_request(msg::XS_WRITE, 1, 0, &[&big]),
            Err(XsError::RequestTooLong(4097))
        );
        assert!(encode_request(msg::XS_WRITE, 1, 0, &[&big[..4096]]).is_ok());
    }

    #[test]
    fn types_are_checked() {
        for t in 0..23 {
            assert_eq!(check_type(t).is_ok(), t != 20, "type {t}");
        }
        assert_eq!(check_type(23), Err(Malformed::UnknownType(23)));
        assert_eq!(check_type(0xffff), Err(Malformed::UnknownType(0xffff)));
    }

    #[test]
    fn strings_need_their_nul_and_valid_utf8() {
        assert_eq!(parse_string(b"OK\0"), Ok("OK"));
        assert_eq!(parse_string(b"OK"), Err(Malformed::MissingNul));
        assert_eq!(parse_string(b""), Err(Malformed::MissingNul));
        assert_eq!(parse_string(b"a\0b\0"), Err(Malformed::MissingNul));
        assert_eq!(parse_string(b"\xff\xfe\0"), Err(Malformed::InvalidUtf8));
        assert_eq!(parse_strings(b"a\0bc\0\0"), Ok(vec!["a", "bc", ""]));
        assert_eq!(parse_strings(b""), Ok(vec![]));
        assert_eq!(parse_strings(b"a\0bc"), Err(Malformed::MissingNul));
        assert_eq!(parse_strings(b"a\0\xc3\0"), Err(Malformed::InvalidUtf8));
    }

    #[test]
    fn error_replies_become_typed_errors() {
        assert_eq!(parse_error(b"ENOENT\0"), XsError::Errno(Errno::ENOENT));
        assert_eq!(parse_error(b"EACCES\0"), XsError::Errno(Errno::EACCES));
        assert_eq!(parse_error(b"EAGAIN\0"), XsError::Errno(Errno::EAGAIN));
        assert_eq!(parse_error(b"E2BIG\0"), XsError::Errno(Errno::E2BIG));
        assert_eq!(
            parse_error(b"EQUOTA\0"),
            XsError::Malformed(Malformed::UnknownErrorName)
        );
        assert_eq!(
            parse_error(b"EINVAL"),
            XsError::Malformed(Malformed::MissingNul)
        );
    }

    #[test]
    fn numbers_watch_events_and_perms_parse_strictly() {
        assert_eq!(parse_u32("42"), Ok(42));
        for bad in ["", "-1", "4294967296", "1x", " 1", "99999999999"] {
            assert_eq!(parse_u32(bad), Err(Malformed::BadNumber), "{bad:?}");
        }
        assert_eq!(
            parse_watch_event(b"/a/b\0tok\0"),
            Ok(("/a/b".into(), "tok".into()))
        );
        assert_eq!(parse_watch_event(b"/a/b\0"), Err(Malformed::MissingNul));
        assert_eq!(parse_watch_event(b"/a/b\0tok"), Err(Malformed::MissingNul));
        let p = Perm {
            domid: DomId(7),
            access: Access::ReadWrite,
        };
        assert_eq!(encode_perm(&p), "b7");
        assert_eq!(parse_perm("b7"), Ok(p));
        assert_eq!(
            parse_perm("n0"),
            Ok(Perm {
                domid: DomId(0),
                access: Access::None
            })
        );
        for bad in ["", "x1", "r", "r70000", "r-1"] {
            assert_eq!(parse_perm(bad), Err(Malformed::BadPermission), "{bad:?}");
        }
    }

    #[test]
    fn paths_are_checked_before_sending() {
        assert_eq!(check_path("data/x"), Ok(()));
        assert_eq!(check_path(""), Err(XsError::InvalidPath));
        assert_eq!(check_path("a\0b"), Err(XsError::InvalidPath));
        assert_eq!(check_path(&"a".repeat(3073)), Err(XsError::InvalidPath));
    }

    #[test]
    fn the_longest_path_is_accepted() {
        assert_eq!(check_path(&"a".repeat(XENSTORE_ABS_PATH_MAX)), Ok(()));
    }

    #[test]
    fn ten_digit_numbers_parse_and_padding_or_signs_do_not() {
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32("0000000042"), Ok(42));
        // `str::parse` alone would accept these.
        for bad in ["00000000042", "000000000001", "+1"] {
            assert_eq!(parse_u32(bad), Err(Malformed::BadNumber), "{bad:?}");
        }
    }

    #[test]
    fn every_access_letter_round_trips() {
        for (access, s) in [
            (Access::None, "n3"),
            (Access::Read, "r3"),
            (Access::Write, "w3"),
            (Access::ReadWrite, "b3"),
        ] {
            let p = Perm {
                domid: DomId(3),
                access,
            };
            assert_eq!(encode_perm(&p), s);
            assert_eq!(parse_perm(s), Ok(p));
        }
    }
}
