//! A bound on a wait that too long a duration cannot overflow.

use std::time::{Duration, Instant};

/// The instant a wait gives up, or none: `Instant::now() + d` panics when
/// `d` does not fit (`Duration::MAX` as "wait forever"), so such a bound
/// means no deadline instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// `within` from now; no deadline when that is past the clock's range.
    pub(crate) fn after(within: Duration) -> Self {
        Self(Instant::now().checked_add(within))
    }

    /// Time left (zero once passed; `Duration::MAX` without a deadline).
    pub(crate) fn remaining(&self) -> Duration {
        match self.0 {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        }
    }

    /// Whether the deadline has passed (never, without one).
    pub(crate) fn passed(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_past_the_clocks_range_is_no_deadline() {
        let forever = Deadline::after(Duration::MAX);
        assert!(!forever.passed());
        assert_eq!(forever.remaining(), Duration::MAX);
    }

    #[test]
    fn a_zero_bound_has_passed_at_once() {
        let now = Deadline::after(Duration::ZERO);
        assert!(now.passed());
        assert_eq!(now.remaining(), Duration::ZERO);
    }
}
