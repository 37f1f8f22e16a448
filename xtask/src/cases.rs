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
    /// The scratch application outside the repository (see `scratch.rs`).
    ScratchApp,
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
    Case {
        name: "scratch-app",
        mode: Mode::Domu,
        guests: &[Expect {
            source: Source::ScratchApp,
            reason: "poweroff",
            output: &[crate::scratch::APP_GREETING],
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
];

impl Source {
    /// The guest's domain name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Example(name) => name,
            Source::ScratchApp => crate::scratch::APP_NAME,
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
