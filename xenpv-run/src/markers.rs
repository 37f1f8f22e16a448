//! Reading the serial console on the host: which lines are a guest's output,
//! which are the `XENPV-...` markers printed by dom0 (`dom0/init.sh`,
//! `dom0/lab.sh`), and which are Xen's or Linux's own messages.

/// What one line of the serial console means.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// `[name] text`: a line of a guest's console.
    Guest {
        name: &'a str,
        text: &'a str,
    },
    /// `[dom0:name] text`: a line of a guest's dom0 companion script.
    Companion {
        name: &'a str,
        text: &'a str,
    },
    /// `[xl:name] text`: xl's complaint about a guest.
    Xl {
        name: &'a str,
        text: &'a str,
    },
    Dom0Ready {
        uptime: Option<f64>,
    },
    Create {
        name: &'a str,
        uptime: Option<f64>,
    },
    Started {
        name: &'a str,
        domid: &'a str,
        uptime: Option<f64>,
    },
    FirstOutput {
        name: &'a str,
        uptime: Option<f64>,
    },
    /// A guest ended: `XENPV-GUEST name reason`.
    GuestEnd {
        name: &'a str,
        reason: &'a str,
        uptime: Option<f64>,
    },
    /// `XENPV-EXIT name CODE`: the code the guest gave `xenpv::exit`
    /// (reported just before its `XENPV-GUEST` line).
    ExitCode {
        name: &'a str,
        code: i32,
    },
    /// `XENPV-COMPANION name exit CODE` or `... stopped`.
    CompanionEnd {
        name: &'a str,
        status: &'a str,
    },
    Error(&'a str),
    Done,
    /// Anything else: Xen's and Linux's messages.
    Noise(&'a str),
}

/// Interprets one line (without its line ending) of a Xen + Linux dom0 boot.
/// `guests` are the names in this boot: only `[name] ` for those is guest output.
pub fn parse<'a>(line: &'a str, guests: &[String]) -> Event<'a> {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((tag, text)) = rest.split_once("] ") {
            if guests.iter().any(|g| g == tag) {
                return Event::Guest { name: tag, text };
            }
            if let Some(name) = tag.strip_prefix("dom0:") {
                return Event::Companion { name, text };
            }
            if let Some(name) = tag.strip_prefix("xl:") {
                return Event::Xl { name, text };
            }
        } else if let Some(tag) = rest.strip_suffix(']') {
            // An empty guest line arrives as `[name]` once trailing blanks are trimmed.
            if guests.iter().any(|g| g == tag) {
                return Event::Guest {
                    name: tag,
                    text: "",
                };
            }
        }
    }
    // Markers are looked for anywhere in the line: a kernel message may
    // have been printed just before one without a line break.
    let Some(at) = line.find("XENPV-") else {
        return Event::Noise(line);
    };
    let marker = &line[at..];
    let mut words = marker.split_whitespace();
    let kind = words.next().unwrap_or("");
    let mut word = || words.next();
    let num = |w: Option<&str>| w.and_then(|w| w.parse::<f64>().ok());
    match kind {
        "XENPV-DOM0-READY" => Event::Dom0Ready {
            uptime: num(word()),
        },
        "XENPV-CREATE" => match word() {
            Some(name) => Event::Create {
                name,
                uptime: num(word()),
            },
            None => Event::Noise(line),
        },
        "XENPV-STARTED" => match (word(), word()) {
            (Some(name), Some(domid)) => Event::Started {
                name,
                domid,
                uptime: num(word()),
            },
            _ => Event::Noise(line),
        },
        "XENPV-FIRST-OUTPUT" => match word() {
            Some(name) => Event::FirstOutput {
                name,
                uptime: num(word()),
            },
            None => Event::Noise(line),
        },
        "XENPV-GUEST" => match (word(), word()) {
            (Some(name), Some(reason)) => Event::GuestEnd {
                name,
                reason,
                uptime: num(word()),
            },
            _ => Event::Noise(line),
        },
        "XENPV-EXIT" => match (word(), word().and_then(|c| c.parse().ok())) {
            (Some(name), Some(code)) => Event::ExitCode { name, code },
            _ => Event::Noise(line),
        },
        "XENPV-COMPANION" => match word() {
            Some(name) => {
                let status = marker.split_once(name).map(|(_, s)| s.trim()).unwrap_or("");
                Event::CompanionEnd { name, status }
            }
            None => Event::Noise(line),
        },
        "XENPV-ERROR" => Event::Error(marker["XENPV-ERROR".len()..].trim()),
        "XENPV-DONE" => Event::Done,
        _ => Event::Noise(line),
    }
}

/// How a guest booted as dom0 ended, from Xen's own message (Xen 4.17's
/// `hwdom_shutdown()` in xen/common/shutdown.c), if `line` is that message.
pub fn dom0_shutdown(line: &str) -> Option<&'static str> {
    let at = line.find("Hardware Dom0 ")?;
    let rest = &line[at + "Hardware Dom0 ".len()..];
    Some(if rest.starts_with("halted") {
        "poweroff"
    } else if rest.starts_with("crashed") {
        "crash"
    } else if rest.starts_with("shutdown: watchdog") {
        "watchdog"
    } else if rest.starts_with("shutdown: rebooting") {
        "reboot"
    } else {
        "unknown"
    })
}

/// Whether `line` says the machine is dead and will print nothing useful any
/// more: a Xen panic or a Linux dom0 panic.
pub fn fatal(line: &str) -> bool {
    line.contains("Panic on CPU") || line.contains("Kernel panic - not syncing")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["hello".into(), "ring_producer".into()]
    }

    #[test]
    fn guest_lines() {
        let g = names();
        assert_eq!(
            parse("[hello] Hello from xenpv", &g),
            Event::Guest {
                name: "hello",
                text: "Hello from xenpv"
            }
        );
        assert_eq!(
            parse("[hello]", &g),
            Event::Guest {
                name: "hello",
                text: ""
            }
        );
        // A guest printing a marker does not fake one.
        assert_eq!(
            parse("[hello] XENPV-DONE", &g),
            Event::Guest {
                name: "hello",
                text: "XENPV-DONE"
            }
        );
        // Unknown names are not guest output.
        assert_eq!(parse("[other] x", &g), Event::Noise("[other] x"));
        assert_eq!(
            parse("[dom0:hello] ok", &g),
            Event::Companion {
                name: "hello",
                text: "ok"
            }
        );
        assert_eq!(
            parse("[xl:hello] bad cfg", &g),
            Event::Xl {
                name: "hello",
                text: "bad cfg"
            }
        );
    }

    #[test]
    fn markers() {
        let g = names();
        assert_eq!(
            parse("XENPV-DOM0-READY 9.81", &g),
            Event::Dom0Ready { uptime: Some(9.81) }
        );
        assert_eq!(
            parse("XENPV-STARTED hello 3 10.5", &g),
            Event::Started {
                name: "hello",
                domid: "3",
                uptime: Some(10.5)
            }
        );
        assert_eq!(
            parse("XENPV-GUEST hello crash", &g),
            Event::GuestEnd {
                name: "hello",
                reason: "crash",
                uptime: None
            }
        );
        assert_eq!(
            parse("[   12.0] xen: junk XENPV-GUEST hello poweroff 12.5", &g),
            Event::GuestEnd {
                name: "hello",
                reason: "poweroff",
                uptime: Some(12.5)
            }
        );
        assert_eq!(
            parse("XENPV-COMPANION hello exit 3", &g),
            Event::CompanionEnd {
                name: "hello",
                status: "exit 3"
            }
        );
        assert_eq!(
            parse("XENPV-ERROR dom0 setup: xenstored", &g),
            Event::Error("dom0 setup: xenstored")
        );
        assert_eq!(parse("XENPV-DONE", &g), Event::Done);
        assert_eq!(parse("XENPV-GUEST", &g), Event::Noise("XENPV-GUEST"));
        assert_eq!(
            parse("XENPV-EXIT hello -3", &g),
            Event::ExitCode {
                name: "hello",
                code: -3
            }
        );
        for bad in [
            "XENPV-EXIT hello",
            "XENPV-EXIT hello x",
            "XENPV-EXIT hello 99999999999",
        ] {
            assert_eq!(parse(bad, &g), Event::Noise(bad));
        }
        assert_eq!(
            parse("(XEN) Xen version 4.17", &g),
            Event::Noise("(XEN) Xen version 4.17")
        );
    }

    #[test]
    fn dom0_shutdown_messages() {
        assert_eq!(
            dom0_shutdown("(XEN) Hardware Dom0 halted: halting machine"),
            Some("poweroff")
        );
        assert_eq!(
            dom0_shutdown("(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting."),
            Some("crash")
        );
        assert_eq!(
            dom0_shutdown("(XEN) Hardware Dom0 shutdown: rebooting machine"),
            Some("reboot")
        );
        assert_eq!(dom0_shutdown("(XEN) Dom0 has maximum 1 VCPUs"), None);
    }
}
