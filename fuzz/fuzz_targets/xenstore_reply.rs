//! Fuzzes everything xenstored can say to us: the reply parsers of
//! `xenstore::wire` on raw payloads, then a `Client` whose transport
//! returns the fuzz input as the reply stream (split into fuzz-chosen
//! chunks) while it runs a fuzz-chosen sequence of requests. A broken or
//! hostile xenstored may make requests fail, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenpv::abi::xenstore::HEADER_SIZE;
use xenpv::xenstore::{wire, Access, Client, Perm, Transport, TxId, XsError};
use xenpv::DomId;
use xenpv_fuzz::Input;

/// A xenstored that takes every request and answers with fuzz bytes.
struct Scripted<'a> {
    input: Input<'a>,
    clock: u64,
}

impl Transport for Scripted<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        // Sometimes take only part of a request (a full ring).
        Ok(match self.input.u8() {
            0 => 0,
            1 => bytes.len().min(7),
            _ => bytes.len(),
        })
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let b = self.input.chunk(1);
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        Ok(n)
    }

    fn now_ns(&self) -> u64 {
        self.clock
    }

    fn wait(&mut self, _deadline_ns: u64) -> Result<(), XsError> {
        // Time passes with every wait, so every request ends.
        self.clock += 1_000_000_000;
        if self.input.is_empty() {
            self.clock += 1 << 40;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);

    // 1. The parsers alone, on one payload.
    let payload = input.chunk(4);
    let _ = wire::parse_string(payload);
    let _ = wire::parse_strings(payload);
    let _ = wire::parse_error(payload);
    let _ = wire::parse_watch_event(payload);
    if let Ok(s) = core::str::from_utf8(payload) {
        let _ = wire::parse_u32(s);
        if let Ok(p) = wire::parse_perm(s) {
            // What parses must round-trip.
            assert_eq!(wire::parse_perm(&wire::encode_perm(&p)), Ok(p));
        }
    }
    let mut h = [0u8; HEADER_SIZE];
    h.copy_from_slice(&{
        let mut b = [0u8; HEADER_SIZE];
        let src = input.bytes(HEADER_SIZE);
        b[..src.len()].copy_from_slice(src);
        b
    });
    if let Ok(hdr) = wire::decode_header(&h) {
        assert!(hdr.len as usize <= xenpv::abi::xenstore::XENSTORE_PAYLOAD_MAX);
        assert_eq!(wire::encode_header(&hdr), h);
        let _ = wire::check_type(hdr.type_);
    }

    // 2. A client talking to a scripted xenstored.
    let nops = input.u8() % 16;
    let mut ops = Vec::new();
    for _ in 0..nops {
        ops.push(input.u8());
    }
    let mut client = Client::new(Scripted { input, clock: 0 });
    client.set_timeout_ns(3_000_000_000);
    for op in ops {
        let r: Result<(), XsError> = match op % 12 {
            0 => client.read("data/x").map(drop),
            1 => client.read_string("data/x").map(drop),
            2 => client.write("data/x", b"value"),
            3 => client.directory("data").map(drop),
            4 => client.get_perms("data/x").map(drop),
            5 => client.set_perms(
                "data/x",
                &[
                    Perm {
                        domid: DomId(1),
                        access: Access::None,
                    },
                    Perm {
                        domid: DomId(2),
                        access: Access::Read,
                    },
                ],
            ),
            6 => client.watch("data", "tok"),
            7 => client.poll_watch_event().map(drop),
            8 => client
                .transaction_start()
                .and_then(|tx| client.transaction_end(tx, op & 0x80 != 0)),
            9 => client.own_domid().map(drop),
            10 => client.transaction(|tx| tx.write("data/y", b"1")),
            _ => client.read_in(TxId(op as u32), "data/z").map(drop),
        };
        // A broken connection stays broken: every later request says so.
        if let Err(XsError::Broken(_)) = r {
            assert!(matches!(client.read("a"), Err(XsError::Broken(_))));
        }
    }
});
