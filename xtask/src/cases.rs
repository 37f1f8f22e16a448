//! The under-Xen test cases of `cargo xtask test`: which guests boot
//! together, how each must end, and what each must print. Edit the table.

/// How a case is booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As domUs of the lab's Linux dom0 (`xl create`); all such cases share one boot.
    Domu,
    /// The single guest is booted as dom0 itself (one boot per case).
    Dom0,
}

/// Where a guest's image comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `examples/<name>.rs`, with `examples/<name>.cfg`.
    Example(&'static str),
}

/// What one guest of a case must do.
pub struct Expect {
    pub source: Source,
    /// Shutdown reason: `poweroff`, `crash`, `reboot`, ...
    pub reason: &'static str,
    /// Regular expressions (regex-lite syntax) that must each match a line of its console.
    pub output: &'static [&'static str],
}

/// One test case: guests booted together.
pub struct Case {
    pub name: &'static str,
    pub mode: Mode,
    pub guests: &'static [Expect],
}

pub const CASES: &[Case] = &[
    Case {
        name: "hello",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("hello"),
            reason: "poweroff",
            output: &[r"Hello from xenpv"],
        }],
    },
    Case {
        name: "panic",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("panic"),
            reason: "crash",
            output: &[r"panicked at examples/panic\.rs:"],
        }],
    },
    Case {
        name: "pagefault",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("pagefault"),
            reason: "crash",
            output: &[r"page fault at address 0x0*dead0000"],
        }],
    },
    // Memory: frame allocator, aliasing map/unmap, exhaustion, leak check.
    Case {
        name: "mm-selftest",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("mm_selftest"),
            reason: "poweroff",
            output: &[r"mm_selftest: aliasing map/unmap ok", r"mm_selftest: PASS"],
        }],
    },
    // Issue 3: events, timers, xenstore.
    Case {
        name: "events",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("ev_selftest"),
            reason: "poweroff",
            output: &[r"ok: sleep\(100 ms\) within", r"ev_selftest: all checks passed"],
        }],
    },
    Case {
        name: "xenstore-walk",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("xenstore_walk"),
            reason: "poweroff",
            output: &[r"ok: name and domain path match the xl config", r"xenstore_walk: all checks passed"],
        }],
    },
    Case {
        name: "xenstore-watch",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("xs_watch"),
            reason: "poweroff",
            output: &[r"watch event path .data/ping", r"xs_watch: all checks passed"],
        }],
    },
    Case {
        name: "event-ping-pong",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("ev_ping"),
                reason: "poweroff",
                output: &[r"1000 interdomain round trips in", r"ev_ping: all checks passed"],
            },
            Expect { source: Source::Example("ev_pong"), reason: "poweroff", output: &[r"answered 1000 pings"] },
        ],
    },
    // Issue 4: grant tables.
    Case {
        name: "grant-two-and-three-guests",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("grant_a"),
                reason: "poweroff",
                output: &[r"A sees B's write", r"grant_a: PASS"],
            },
            Expect {
                source: Source::Example("grant_b"),
                reason: "poweroff",
                output: &[r"writable map of the read-only grant refused", r"grant_b: PASS"],
            },
            Expect { source: Source::Example("grant_c"), reason: "poweroff", output: &[r"refused", r"grant_c: PASS"] },
        ],
    },
    // Issue 5: two guests stream 64 MiB through a vchan ring.
    Case {
        name: "ring-pair",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("ring_producer"),
                reason: "poweroff",
                output: &[r"sent 67108864 bytes, checksum", r"ring_producer: PASS"],
            },
            Expect {
                source: Source::Example("ring_consumer"),
                reason: "poweroff",
                output: &[r"received 67108864 bytes, checksum", r"ring_consumer: PASS"],
            },
        ],
    },
    Case {
        name: "grant-selftest-as-dom0",
        mode: Mode::Dom0,
        guests: &[Expect {
            source: Source::Example("grant_selftest"),
            reason: "poweroff",
            output: &[r"\(a\) end_access after unmap: ok", r"\(d\) 600 pages shared", r"grant_selftest: PASS"],
        }],
    },
    Case {
        name: "events-as-dom0",
        mode: Mode::Dom0,
        guests: &[Expect {
            source: Source::Example("ev_selftest"),
            reason: "poweroff",
            output: &[r"ev_selftest: all checks passed"],
        }],
    },
    Case {
        name: "hello-as-dom0",
        mode: Mode::Dom0,
        guests: &[Expect {
            source: Source::Example("hello"),
            reason: "poweroff",
            output: &[r"Hello from xenpv"],
        }],
    },
    // Issue 4 (e): Linux interop; gnt-interop (xtask/dom0-tools) maps the
    // guest's grants through gntdev and shares pages through gntalloc.
    Case {
        name: "grant-linux-interop",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("grant_linux"),
            reason: "poweroff",
            output: &[
                r"dom0's gntdev write seen in all 3 pages",
                r"end_access while dom0 maps: refused \(InUse",
                r"notify byte cleared by gntdev",
                r"end_access after the unmap: ok; pending after reclaim: 0",
                r"gntalloc grefs .* pattern ok in 3 pages",
                r"dom0 on our reply in its gntalloc page: ok",
                r"grant_linux: PASS",
            ],
        }],
    },
    // Issue 5, interop: dom0's unmodified vchan-socket-proxy (libxenvchan) as
    // client of a xenpv server, one session per ring-order pair (10/11,
    // 11/10, 12/16, 20/12), 256 KiB each, checked byte for byte in dom0.
    Case {
        name: "vchan-echo-libxenvchan-client",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("vchan_echo"),
            reason: "poweroff",
            output: &[
                r"session 0: offering .* \(order 10\), .* \(order 11\)",
                r"session 1: offering .* \(order 11\), .* \(order 10\)",
                r"session 2: offering .* \(order 12\), .* \(order 16\)",
                r"session 3: offering .* \(order 20\), .* \(order 12\)",
                r"session 3: dom0 says: ok: 262144 bytes came back identical",
                r"vchan_echo: PASS",
            ],
        }],
    },
    // Issue 5, interop the other way: dom0's unmodified vchan-socket-proxy is
    // the server (libxenvchan over Linux's gntalloc), a xenpv guest the client.
    Case {
        name: "vchan-client-libxenvchan-server",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::Example("vchan_client"),
            reason: "poweroff",
            output: &[r"connected to dom0 at .*\(order 10\).*\(order 11\)", r"262144 bytes echoed back intact", r"vchan_client: PASS"],
        }],
    },
    // Issue 5, peer death: the victim (client) is destroyed mid-stream with
    // `xl destroy`; the survivor (server, order-20 ring) gets an error, not a
    // hang, and gets back every page the dead peer had mapped.
    Case {
        name: "vchan-peer-death",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("vchan_victim"),
                reason: "gone",
                output: &[r"vchan_victim: connected to dom"],
            },
            Expect {
                source: Source::Example("vchan_survivor"),
                reason: "poweroff",
                output: &[
                    r"read failed after \d+ bytes: PeerGone",
                    r"0 still pending after",
                    r"vchan_survivor: PASS: peer death detected",
                ],
            },
        ],
    },
    // Issue 6: a short soak (1,000 share/release, 20 vchan open/close
    // cycles; the full 10,000/1,000 is the examples' default) with a third
    // domain guessing grant references throughout.
    Case {
        name: "soak-and-ref-guessing",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("soak_a"),
                reason: "poweroff",
                output: &[r"released while mapped, all reclaimed", r"soak_a: no leak", r"soak_a: PASS"],
            },
            Expect { source: Source::Example("soak_b"), reason: "poweroff", output: &[r"soak_b: no leak", r"soak_b: PASS"] },
            Expect {
                source: Source::Example("hostile_guesser"),
                reason: "poweroff",
                output: &[r"guesses at dom\d+'s refs .*: 0 mapped", r"hostile_guesser: PASS"],
            },
        ],
    },
    // Issue 6: hostile peers (peer death under `xl destroy` is the
    // vchan_victim/vchan_survivor case).
    Case {
        name: "hostile-vchan-garbage-indices",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("hostile_victim"),
                reason: "poweroff",
                output: &[r"read from the scribbled ring: Err\(Vchan\(PeerCorrupt", r"still alive", r"hostile_victim: PASS"],
            },
            Expect { source: Source::Example("hostile_scribbler"), reason: "poweroff", output: &[r"wrote garbage indices"] },
        ],
    },
    Case {
        name: "hostile-map-never-unmap",
        mode: Mode::Domu,
        guests: &[
            Expect {
                source: Source::Example("hostile_sharer"),
                reason: "poweroff",
                output: &[r"freed 0, pending 1", r"pending gref \d+ and its frame never reused", r"hostile_sharer: PASS"],
            },
            Expect {
                source: Source::Example("hostile_hoarder"),
                reason: "poweroff",
                output: &[r"still reads .sharer's page. / .hoarded.", r"hostile_hoarder: PASS"],
            },
        ],
    },
];

impl Source {
    /// The guest's domain name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Example(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sound() {
        let mut domu_names = std::collections::BTreeSet::new();
        for case in CASES {
            assert!(!case.guests.is_empty(), "{}", case.name);
            if case.mode == Mode::Dom0 {
                assert_eq!(
                    case.guests.len(),
                    1,
                    "a dom0 case boots one guest: {}",
                    case.name
                );
            } else {
                for g in case.guests {
                    // All domU cases share a boot: domain names must not clash.
                    assert!(
                        domu_names.insert(g.source.name()),
                        "{} twice",
                        g.source.name()
                    );
                }
            }
            for g in case.guests {
                crate::payload::check_name(g.source.name()).unwrap();
                for pattern in g.output {
                    regex_lite::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
                }
            }
        }
    }
}
