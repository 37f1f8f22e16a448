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
//! # What the harness guarantees
//!
//! A test that returns `Err` fails in place and the next test runs in the
//! same domain. A test that panics or faults ends its domain: there is no
//! unwinding in a unikernel, and going on in the same domain would mean
//! abandoning the failed test's frames without running their
//! destructors, which breaks `Pin`'s drop guarantee (a pinned wait-list
//! node or future whose memory is reused) and leaves whatever locks they
//! held (xenstore, the grant table, the allocator) held for every later
//! test. So the harness prints the failure, then a line for the runner,
//! `xenpv-test-resume: --xenpv-resume=<next>,<passed>,<failed>,<names>`,
//! and the domain crashes; `xenpv-run` boots a fresh domain with that
//! word added to the command line, which skips the tests already run and
//! carries the counts over. Each test after a panic therefore starts in a
//! new domain, with nothing of the failed one left; the last domain
//! prints libtest's summary over all of them and sets the exit status.
//! A failure outside any test (in the harness itself) crashes the domain
//! without the line, and the run fails.
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
    /// Where an earlier domain of this run left off (`--xenpv-resume=`).
    pub resume: Option<Resume>,
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
                flag if flag.starts_with(RESUME_FLAG) => {
                    s.resume = Resume::parse(&flag[RESUME_FLAG.len()..]);
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

/// Where an earlier domain of the same run left off: the word
/// `--xenpv-resume=<next>,<passed>,<failed>,<name>,<name>...` that the
/// runner adds after a test ended its domain. `next` indexes the whole
/// list of tests; the names are the failed tests' (some may be left out
/// when the command line has no room: `failed` is the count).
#[derive(Debug, Default, PartialEq)]
pub struct Resume {
    pub next: usize,
    pub passed: usize,
    pub failed: usize,
    pub names: Vec<String>,
}

/// The command-line flag the runner passes a [`Resume`] in.
pub const RESUME_FLAG: &str = "--xenpv-resume=";

/// The console line's prefix the runner reads a [`Resume`] from.
pub const RESUME_LINE: &str = "xenpv-test-resume: ";

impl Resume {
    /// Reads the value of `--xenpv-resume=`; `None` when malformed.
    pub fn parse(value: &str) -> Option<Resume> {
        let mut parts = value.split(',');
        let mut number = || parts.next()?.parse::<usize>().ok();
        let (next, passed, failed) = (number()?, number()?, number()?);
        let names: Vec<String> = parts.filter(|n| !n.is_empty()).map(String::from).collect();
        (names.len() <= failed).then_some(Resume {
            next,
            passed,
            failed,
            names,
        })
    }
}

/// Where the harness is.
struct State {
    tests: &'static [Test],
    selected: Vec<usize>,
    /// Index into `selected` of the test running now, or of the next one.
    next: usize,
    running: Option<&'static str>,
    passed: usize,
    failed: Vec<(&'static str, String)>,
    /// Failures of earlier domains of this run.
    earlier: Resume,
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
    let wanted: Vec<usize> = (0..tests.len())
        .filter(|&i| selection.wants(tests[i].name))
        .collect();
    let earlier = selection.resume.unwrap_or_default();
    if earlier == Resume::default() {
        crate::println!(
            "\nrunning {} test{}",
            wanted.len(),
            if wanted.len() == 1 { "" } else { "s" }
        );
    }
    let filtered_out = tests.len() - wanted.len();
    let selected = wanted.into_iter().filter(|&i| i >= earlier.next).collect();
    *STATE.lock() = Some(State {
        tests,
        filtered_out,
        selected,
        next: 0,
        running: None,
        passed: 0,
        failed: Vec::new(),
        earlier,
        started_ns: crate::time::now_ns(),
    });
    crate::runtime::set_failure_hook(test_ended_the_domain);
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
    /// A failure's message follows its line at once: a later test may end
    /// the domain before the summary is printed.
    fn record(&mut self, outcome: Result<(), String>) -> Option<String> {
        let name = self.running.take()?;
        self.next += 1;
        Some(match outcome {
            Ok(()) => {
                self.passed += 1;
                alloc::format!("test {name} ... ok")
            }
            Err(message) => {
                let line = alloc::format!("test {name} ... FAILED\n{message}");
                self.failed.push((name, message));
                line
            }
        })
    }
}

/// Prints the summary; returns the exit status.
#[cfg(target_os = "none")]
fn report(state: &State) -> i32 {
    let secs = crate::time::now_ns().saturating_sub(state.started_ns) as f64 / 1e9;
    crate::print!("{}", summary(state, secs));
    if state.failed.is_empty() && state.earlier.failed == 0 {
        0
    } else {
        101
    }
}

/// libtest's closing report over every domain of the run: the failures
/// with their messages (an earlier domain's were printed when it ended),
/// then the counts.
fn summary(state: &State, secs: f64) -> String {
    use core::fmt::Write as _;
    let earlier = &state.earlier;
    let failed = earlier.failed + state.failed.len();
    let mut out = String::new();
    if failed > 0 {
        out.push_str("\nfailures:\n");
        for name in &earlier.names {
            let _ = write!(
                out,
                "\n---- {name} stdout ----\n(it ended its domain; its message is above)\n"
            );
        }
        for (name, message) in &state.failed {
            let _ = write!(out, "\n---- {name} stdout ----\n{message}\n");
        }
        out.push_str("\nfailures:\n");
        let names = earlier.names.iter().map(String::as_str);
        for name in names.chain(state.failed.iter().map(|(n, _)| *n)) {
            let _ = writeln!(out, "    {name}");
        }
        let unnamed = earlier.failed - earlier.names.len();
        if unnamed > 0 {
            let _ = writeln!(out, "    ... and {unnamed} more (named above)");
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    let _ = write!(
        out,
        "\ntest result: {verdict}. {} passed; {failed} failed; 0 ignored; 0 measured; {} filtered out; finished in {secs:.2}s\n",
        earlier.passed + state.passed,
        state.filtered_out
    );
    out
}

/// Writes the runner's resume line for the running test, which failed
/// by panicking or faulting: `None` when no test is running.
fn resume_line(state: &State, out: &mut impl fmt::Write) -> Option<()> {
    let failed_now = state.running?;
    let index = *state.selected.get(state.next)?;
    let earlier = &state.earlier;
    let names = earlier.names.iter().map(String::as_str);
    let names = names.chain(state.failed.iter().map(|(n, _)| *n));
    let _ = write!(
        out,
        "{RESUME_LINE}{RESUME_FLAG}{},{},{}",
        index + 1,
        earlier.passed + state.passed,
        earlier.failed + state.failed.len() + 1
    );
    for name in names.chain(core::iter::once(failed_now)) {
        let _ = write!(out, ",{name}");
    }
    let _ = writeln!(out);
    Some(())
}

/// The failure hook of the runtime: after a test panicked or faulted
/// (its message is printed), reports it and where the next domain goes
/// on, and returns to the runtime, which crashes the domain. Allocates
/// nothing: the heap may be what failed.
#[cfg(target_os = "none")]
fn test_ended_the_domain() {
    /// Console output without the console's lock (the failure may have
    /// struck while it was held).
    struct Emergency;
    impl fmt::Write for Emergency {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            crate::console::emergency_print(format_args!("{s}"));
            Ok(())
        }
    }
    // The failure may have struck with the harness's own lock held (in
    // `record`): then there is no test to report, only a crash.
    let Some(guard) = STATE.try_lock() else {
        return;
    };
    let Some(state) = guard.as_ref() else {
        return;
    };
    if let Some(name) = state.running {
        crate::console::emergency_print(format_args!("test {name} ... FAILED\n"));
        let _ = resume_line(state, &mut Emergency);
    }
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
            earlier: Resume::default(),
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
            Some("test b ... FAILED\nbad")
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
    fn a_failure_that_ends_the_domain_resumes_after_it_with_the_counts() {
        static TESTS: &[Test] = &[
            Test {
                name: "a",
                run: || Ok(()),
            },
            Test {
                name: "m::b",
                run: || Ok(()),
            },
            Test {
                name: "c",
                run: || Ok(()),
            },
        ];
        // The first domain: `a` passed, `m::b` panics.
        let mut state = State {
            tests: TESTS,
            selected: alloc::vec![0, 1, 2],
            next: 1,
            running: Some("m::b"),
            passed: 1,
            failed: Vec::new(),
            earlier: Resume::default(),
            filtered_out: 0,
            started_ns: 0,
        };
        let mut line = String::new();
        assert_eq!(resume_line(&state, &mut line), Some(()));
        assert_eq!(line, "xenpv-test-resume: --xenpv-resume=2,1,1,m::b\n");
        // The runner's word reaches the next domain's command line.
        let word = line.trim_end().strip_prefix(RESUME_LINE).unwrap();
        let selection = Selection::parse(["c", word]);
        assert_eq!(selection.filters, ["c"], "the word is no filter");
        let earlier = selection.resume.unwrap();
        assert_eq!(
            earlier,
            Resume {
                next: 2,
                passed: 1,
                failed: 1,
                names: alloc::vec!["m::b".into()],
            }
        );
        // The next domain runs `c` only, and its summary counts all three.
        state = State {
            tests: TESTS,
            selected: alloc::vec![2],
            next: 0,
            running: Some("c"),
            passed: 0,
            failed: Vec::new(),
            earlier,
            filtered_out: 0,
            started_ns: 0,
        };
        assert_eq!(state.record(Ok(())).as_deref(), Some("test c ... ok"));
        let text = summary(&state, 0.0);
        assert!(text.contains("\n---- m::b stdout ----\n"), "{text}");
        assert!(text.contains("\nfailures:\n    m::b\n"), "{text}");
        assert!(
            text.contains("test result: FAILED. 2 passed; 1 failed;"),
            "{text}"
        );
        // Nothing running: no line, the runtime just crashes.
        assert_eq!(resume_line(&state, &mut String::new()), None);
    }

    #[test]
    fn resume_words_that_do_not_add_up_are_refused() {
        assert_eq!(Resume::parse("1,2"), None);
        assert_eq!(Resume::parse("x,0,0"), None);
        assert_eq!(Resume::parse("3,0,1,a,b"), None, "more names than failures");
        let some = Resume::parse("3,0,2,a").unwrap();
        assert_eq!((some.failed, some.names.len()), (2, 1));
        let state = State {
            tests: &[],
            selected: Vec::new(),
            next: 0,
            running: None,
            passed: 0,
            failed: Vec::new(),
            earlier: some,
            filtered_out: 0,
            started_ns: 0,
        };
        let text = summary(&state, 0.0);
        assert!(text.contains("    a\n    ... and 1 more"), "{text}");
        assert!(text.contains("0 passed; 2 failed;"), "{text}");
    }
}
