//! Going on after a test ended its domain: the runner's half of the
//! in-guest harness's resume protocol (`xenpv::testing`).
//!
//! A test that panics or faults ends its domain (going on in it would
//! abandon live frames and the locks they hold). Before the domain
//! crashes, the harness prints one line,
//! `xenpv-test-resume: --xenpv-resume=<next>,<passed>,<failed>,<names>`;
//! the runner boots a fresh domain with that word added to the guest's
//! command line, and the harness there skips what already ran and counts
//! on from the earlier domains. The two strings below are the protocol's
//! (the harness defines them as `RESUME_LINE` and `RESUME_FLAG`).

/// The console line's prefix the harness prints.
pub const RESUME_LINE: &str = "xenpv-test-resume: ";
/// The command-line word's prefix the harness reads.
pub const RESUME_FLAG: &str = "--xenpv-resume=";

/// At most this many domains in one run: each resume starts past the test
/// that failed, so a harness can ask for one per test at most; this
/// bounds a guest that keeps asking.
pub const MAX_DOMAINS: usize = 1000;

/// The word the last resume line of `output` asks for, if the guest
/// printed one: `--xenpv-resume=<next>,<passed>,<failed>[,<name>...]`
/// with three numbers and no whitespace.
pub fn requested(output: &[String]) -> Option<String> {
    let line = output.iter().rev().find_map(|l| {
        let at = l.find(RESUME_LINE)?;
        Some(l[at + RESUME_LINE.len()..].trim())
    })?;
    let value = line.strip_prefix(RESUME_FLAG)?;
    let mut parts = value.split(',');
    let numbers_ok = (0..3).all(|_| parts.next().is_some_and(|n| n.parse::<usize>().is_ok()));
    let names_ok = parts.all(|n| !n.is_empty() && !n.chars().any(char::is_whitespace));
    (numbers_ok && names_ok).then(|| line.to_string())
}

/// The guest's command line `extra` with `word` in place of any earlier
/// resume word, within `max` bytes: failed tests' names are dropped from
/// the word's end while it does not fit (the harness then counts them
/// without naming them); `None` when even the counts do not fit.
pub fn command_line(extra: &str, word: &str, max: usize) -> Option<String> {
    let base: Vec<&str> = extra
        .split(' ')
        .filter(|w| !w.is_empty() && !w.starts_with(RESUME_FLAG))
        .collect();
    let mut word = word.to_string();
    loop {
        let line = base
            .iter()
            .copied()
            .chain(std::iter::once(word.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        if line.len() <= max {
            return Some(line);
        }
        // Keep `--xenpv-resume=<next>,<passed>,<failed>`: three commas' worth.
        let cut = word
            .rfind(',')
            .filter(|&i| word[..i].matches(',').count() >= 2)?;
        word.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_last_well_formed_request_is_taken() {
        let out = lines(&[
            "running 3 tests",
            "panicked at tests/guest.rs:9:5: on purpose",
            "test m::b ... FAILED",
            "xenpv-test-resume: --xenpv-resume=2,1,1,m::b",
        ]);
        assert_eq!(
            requested(&out).as_deref(),
            Some("--xenpv-resume=2,1,1,m::b")
        );
        assert_eq!(requested(&lines(&["test result: ok."])), None);
        for bad in [
            "xenpv-test-resume: --xenpv-resume=2,1",
            "xenpv-test-resume: --xenpv-resume=2,x,1",
            "xenpv-test-resume: --other=1,1,1",
            "xenpv-test-resume: --xenpv-resume=2,1,1,,",
        ] {
            assert_eq!(requested(&lines(&[bad])), None, "{bad}");
        }
    }

    #[test]
    fn the_word_replaces_the_last_one_and_sheds_names_to_fit() {
        let line = command_line(
            "fast --xenpv-resume=1,0,1,a",
            "--xenpv-resume=2,0,2,a,b",
            100,
        );
        assert_eq!(line.as_deref(), Some("fast --xenpv-resume=2,0,2,a,b"));
        let word = "--xenpv-resume=9,3,3,first,second,third";
        assert_eq!(
            command_line("x", word, 30).as_deref(),
            Some("x --xenpv-resume=9,3,3,first")
        );
        assert_eq!(
            command_line("x", word, 24).as_deref(),
            Some("x --xenpv-resume=9,3,3")
        );
        assert_eq!(command_line("x", word, 10), None);
    }
}
