//! The ring benchmark's rounds, the same for the guests (`ring_producer`,
//! `ring_consumer`) and dom0's `vchan-bench`, whichever side sends.
//!
//! The receiver measures, so it paces the sender: before each round it
//! writes [`GO`] on its own ring, then times from that write to the last
//! byte of the round. The sender waits for `GO`, then sends one round's
//! bytes. Between rounds the sender is idle, so a reference the receiver
//! measures there (the guests' memcpy) runs on a quiet pair, next to the
//! round it belongs to. After the last round the receiver writes [`DONE`]
//! and the sender closes first.
//!
//! Each figure is then min / median / max over the rounds ([`Spread`]).

use core::fmt;

/// The byte that starts a round.
pub const GO: u8 = b'g';

/// What the receiver writes after the last round.
pub const DONE: &[u8; 2] = b"ok";

/// The most rounds a run may ask for (the guests keep one figure per round).
pub const MAX_ROUNDS: usize = 32;

/// min / median / max of a set of figures (the upper median for an even
/// count, as the host benchmark takes it). `Display` writes them as
/// `min/median/max` with the formatter's precision (2 by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `v` (sorted in place); `None` if `v` is empty.
    pub fn of(v: &mut [f64]) -> Option<Spread> {
        v.sort_unstable_by(f64::total_cmp);
        Some(Spread {
            min: *v.first()?,
            median: v[v.len() / 2],
            max: v[v.len() - 1],
        })
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(2);
        write!(f, "{:.p$}/{:.p$}/{:.p$}", self.min, self.median, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_sorts_and_takes_the_upper_median() {
        let mut v = [3.0, 1.0, 4.0, 1.5, 9.0];
        assert_eq!(
            Spread::of(&mut v),
            Some(Spread {
                min: 1.0,
                median: 3.0,
                max: 9.0
            })
        );
        let mut even = [2.0, 8.0, 4.0, 6.0];
        assert_eq!(Spread::of(&mut even).map(|s| s.median), Some(6.0));
        assert_eq!(Spread::of(&mut []), None);
    }

    #[test]
    fn spread_prints_min_median_max() {
        let s = Spread {
            min: 1.0,
            median: 2.5,
            max: 30.126,
        };
        assert_eq!(format!("{s}"), "1.00/2.50/30.13");
        assert_eq!(format!("{s:.1}"), "1.0/2.5/30.1");
    }
}
