//! In-guest tests with `cargo test`: a harness for `harness = false` test
//! targets, run inside a Xen guest by the `xenpv-run` cargo runner.
//!
//! ```toml
//! # Cargo.toml
//! [[test]]
//! name = "guest"
//! harness = false
//! ```
//!
//! ```ignore
//! // tests/guest.rs
//! #![no_std]
//! #![no_main]
//!
//! xenpv::test_main!(adds, reads_the_clock);
//!
//! fn adds() {
//!     assert_eq!(1 + 1, 2);
//! }
//!
//! fn reads_the_clock() -> Result<(), &'static str> {
//!     if xenpv::time::now_ns() > 0 { Ok(()) } else { Err("no clock") }
//! }
//! ```
//!
//! The output has libtest's form (`test adds ... ok`, then
//! `test result: ok. 2 passed; 0 failed; ...`) and the guest's exit
//! status is 0 when every test passed, 101 otherwise, so `cargo test`
//! reports the failure. A test fails when it returns `Err`, panics, or
//! takes a fatal exception (a page fault, say): the harness reports it
//! with its message and goes on with the next test.
//!
//! Going on after a panic: there is no unwinding in a unikernel, so the
//! harness restarts itself at the top of the boot stack, giving up the
//! failed test's frames without running their destructors (as
//! `core::mem::forget` gives up a value). Whatever the test held stays
//! held: a lock it had taken stays locked, memory it allocated is leaked,
//! pages it shared stay shared. Later tests that need the same lock will
//! hang until the runner's timeout.
//!
//! Arguments after `cargo test -- ` reach the guest's command line:
//! words are name filters (a test runs when its name contains one),
//! `--exact` makes them whole names, `--skip NAME` leaves tests out and
//! `--list` lists the tests; libtest's other flags are accepted and ignored.

// The harness runs in a guest only; host builds keep its pure parts
// (selection, bookkeeping, the summary) for their unit tests.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One test: its name and a function that runs it.
#[derive(Clone, Copy, Debug)]
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

/// What a test function may return: `()`, or `Result<(), E: Debug>`.
pub trait TestResult {
    /// `Err` with the message to report for a failure.
    fn into_outcome(self) -> Result<(), String>;
}

impl TestResult for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> TestResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| alloc::format!("Error: {e:?}"))
    }
}

/// Defines the entry point of a `harness = false` test target: runs the
/// listed test functions under [`run`].
#[macro_export]
macro_rules! test_main {
    ($($test:path),* $(,)?) => {
        $crate::main!(__xenpv_test_main);

        fn __xenpv_test_main() {
            static TESTS: &[$crate::testing::Test] = &[$(
                $crate::testing::Test {
                    name: stringify!($test),
                    run: || $crate::testing::TestResult::into_outcome($test()),
                }
            ),*];
            $crate::testing::run(TESTS)
        }
    };
}

/// Which tests to run, from the words of the command line.
#[derive(Debug, Default, PartialEq)]
pub struct Selection {
    pub filters: Vec<String>,
    pub skip: Vec<String>,
    pub exact: bool,
    pub list: bool,
}

impl Selection {
    /// Reads libtest-style arguments.
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Selection {
        let mut s = Selection::default();
        let mut words = words.into_iter();
        while let Some(w) = words.next() {
            match w {
                "--exact" => s.exact = true,
                "--list" => s.list = true,
                "--skip" => s.skip.extend(words.next().map(String::from)),
                // libtest flags with a value, taken and ignored.
                "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                    words.next();
                }
                flag if flag.starts_with('-') => {}
                filter => s.filters.push(filter.into()),
            }
        }
        s
    }

    /// Whether the test named `name` runs.
    pub fn wants(&self, name: &str) -> bool {
        let matches = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skip.iter().any(|s| name.contains(s.as_str()))
    }
}

/// Where the harness is, kept outside any stack so that it survives a
/// failed test.
struct State {
    tests: &'static [Test],
    selected: Vec<usize>,
    /// Index into `selected` of the test running now, or of the next one.
    next: usize,
    running: Option<&'static str>,
    passed: usize,
    failed: Vec<(&'static str, String)>,
    filtered_out: usize,
    started_ns: u64,
}

#[cfg(target_os = "none")]
static STATE: spin::Mutex<Option<State>> = spin::Mutex::new(None);

/// Runs `tests` with the selection from the guest's command line, prints
/// libtest's report and ends the guest: exit status 0 if all passed, 101
/// otherwise.
#[cfg(target_os = "none")]
pub fn run(tests: &'static [Test]) -> ! {
    let cmdline = crate::start_info::boot_info().cmd_line().unwrap_or("");
    let selection = Selection::parse(cmdline.split_ascii_whitespace());
    if selection.list {
        for t in tests {
            crate::println!("{}: test", t.name);
        }
        crate::println!("\n{} tests, 0 benchmarks", tests.len());
        crate::exit(0)
    }
    let selected: Vec<usize> = (0..tests.len())
        .filter(|&i| selection.wants(tests[i].name))
        .collect();
    crate::println!(
        "\nrunning {} test{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    );
    *STATE.lock() = Some(State {
        tests,
        filtered_out: tests.len() - selected.len(),
        selected,
        next: 0,
        running: None,
        passed: 0,
        failed: Vec::new(),
        started_ns: crate::time::now_ns(),
    });
    go_on()
}

/// Runs the tests from `next` on, then reports. Also the harness's
/// restart point after a failed test.
#[cfg(target_os = "none")]
fn go_on() -> ! {
    loop {
        let test = {
            let mut guard = STATE.lock();
            let state = guard.as_mut().expect("the harness is set up");
            match state.selected.get(state.next) {
                Some(&i) => {
                    let test = state.tests[i];
                    state.running = Some(test.name);
                    test
                }
                None => break,
            }
        };
        let outcome = (test.run)();
        record(outcome);
    }
    let state = STATE.lock().take().expect("the harness is set up");
    crate::exit(report(&state))
}

/// Notes how the running test ended and moves on.
#[cfg(target_os = "none")]
fn record(outcome: Result<(), String>) {
    let line = STATE
        .lock()
        .as_mut()
        .and_then(|state| state.record(outcome));
    if let Some(line) = line {
        crate::println!("{line}");
    }
}

impl State {
    /// Records the running test's outcome; returns its `test ... ` line.
    fn record(&mut self, outcome: Result<(), String>) -> Option<String> {
        let name = self.running.take()?;
        self.next += 1;
        Some(match outcome {
            Ok(()) => {
                self.passed += 1;
                alloc::format!("test {name} ... ok")
            }
            Err(message) => {
                self.failed.push((name, message));
                alloc::format!("test {name} ... FAILED")
            }
        })
    }
}

/// Prints the summary; returns the exit status.
#[cfg(target_os = "none")]
fn report(state: &State) -> i32 {
    let secs = crate::time::now_ns().saturating_sub(state.started_ns) as f64 / 1e9;
    crate::print!("{}", summary(state, secs));
    if state.failed.is_empty() {
        0
    } else {
        101
    }
}

/// libtest's closing report: the failures with their messages, then the counts.
fn summary(state: &State, secs: f64) -> String {
    use core::fmt::Write as _;
    let mut out = String::new();
    if !state.failed.is_empty() {
        out.push_str("\nfailures:\n");
        for (name, message) in &state.failed {
            let _ = write!(out, "\n---- {name} stdout ----\n{message}\n");
        }
        out.push_str("\nfailures:\n");
        for (name, _) in &state.failed {
            let _ = writeln!(out, "    {name}");
        }
    }
    let verdict = if state.failed.is_empty() {
        "ok"
    } else {
        "FAILED"
    };
    let _ = write!(
        out,
        "\ntest result: {verdict}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {secs:.2}s\n",
        state.passed,
        state.failed.len(),
        state.filtered_out
    );
    out
}

/// A short message kept without allocating (the heap may be what failed).
struct Note {
    buf: [u8; 512],
    len: usize,
}

impl fmt::Write for Note {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Called by the panic handler and the fatal-exception handler after they
/// have printed: when a test was running, records its failure with
/// `message` and returns the harness's restart point, which the caller
/// runs on a fresh boot stack. `None` when no test is running (the caller
/// then crashes the domain as usual).
#[cfg(target_os = "none")]
pub(crate) fn recover(message: fmt::Arguments<'_>) -> Option<extern "C" fn() -> !> {
    let mut note = Note {
        buf: [0; 512],
        len: 0,
    };
    let _ = fmt::Write::write_fmt(&mut note, message);
    // The failure may have struck with the harness's own lock held (in
    // `record`): then there is no test to recover, only a crash.
    let guard = STATE.try_lock()?;
    let running = guard.as_ref().is_some_and(|s| s.running.is_some());
    drop(guard);
    if !running {
        return None;
    }
    let text = String::from_utf8_lossy(&note.buf[..note.len]).into_owned();
    record(Err(text));
    crate::event::reenable_upcalls();
    Some(restart)
}

#[cfg(target_os = "none")]
extern "C" fn restart() -> ! {
    go_on()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        let s = Selection::parse([
            "--nocapture",
            "--test-threads",
            "1",
            "add",
            "--skip",
            "slow",
        ]);
        assert_eq!(s.filters, ["add"]);
        assert_eq!(s.skip, ["slow"]);
        assert!(s.wants("adds") && s.wants("add_more"));
        assert!(!s.wants("reads") && !s.wants("add_slow"));
        let exact = Selection::parse(["--exact", "add"]);
        assert!(exact.wants("add") && !exact.wants("adds"));
        let all = Selection::parse([]);
        assert!(all.wants("anything") && !all.list);
        assert!(Selection::parse(["--list"]).list);
    }

    #[test]
    fn results() {
        assert_eq!(().into_outcome(), Ok(()));
        assert_eq!(Ok::<(), u8>(()).into_outcome(), Ok(()));
        assert_eq!(
            Err::<(), _>("boom").into_outcome(),
            Err("Error: \"boom\"".into())
        );
    }

    #[test]
    fn records_and_summary() {
        static TESTS: &[Test] = &[
            Test {
                name: "a",
                run: || Ok(()),
            },
            Test {
                name: "b",
                run: || Err("bad".into()),
            },
        ];
        let mut state = State {
            tests: TESTS,
            selected: alloc::vec![0, 1],
            next: 0,
            running: None,
            passed: 0,
            failed: Vec::new(),
            filtered_out: 3,
            started_ns: 0,
        };
        assert_eq!(state.record(Ok(())), None, "nothing running");
        state.running = Some("a");
        assert_eq!(
            state.record((TESTS[0].run)()).as_deref(),
            Some("test a ... ok")
        );
        state.running = Some("b");
        assert_eq!(
            state.record((TESTS[1].run)()).as_deref(),
            Some("test b ... FAILED")
        );
        assert_eq!((state.next, state.passed, state.failed.len()), (2, 1, 1));
        let text = summary(&state, 1.5);
        assert!(text.contains("\n---- b stdout ----\nbad\n"), "{text}");
        assert!(text.contains("\nfailures:\n    b\n"), "{text}");
        assert!(text.ends_with(
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 3 filtered out; finished in 1.50s\n"
        ), "{text}");
        state.failed.clear();
        assert!(summary(&state, 0.0).contains("test result: ok. 1 passed; 0 failed"));
    }

    #[test]
    fn notes_are_bounded() {
        use core::fmt::Write as _;
        let mut note = Note {
            buf: [0; 512],
            len: 0,
        };
        for _ in 0..100 {
            let _ = note.write_str("0123456789");
        }
        assert_eq!(note.len, 512);
    }
}
