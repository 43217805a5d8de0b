//! Retry delays while the server is unreachable: exponential, capped, with
//! jitter so a school's machines do not all retry in the same second after
//! a network cut.

use std::time::Duration;

/// Exponential backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First delay.
    base: Duration,
    /// Largest delay.
    cap: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    /// Delays `base`, `2·base`, `4·base`… up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// After a success: start again from `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure; returns the nominal (jitter-free) delay before the
    /// next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(30);
        self.failures = self.failures.saturating_add(1);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// [`Backoff::next_delay`] with "equal jitter": uniformly in
    /// `[delay/2, delay]`.
    pub fn next_delay_jittered(&mut self) -> Duration {
        let d = self.next_delay();
        let half = d / 2;
        half + Duration::from_millis(rand::random_range(0..=half.as_millis().max(1) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600));
        let got: Vec<u64> = (0..10).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(
            got,
            vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
        );
        for _ in 0..100 {
            assert_eq!(b.next_delay(), Duration::from_secs(3600));
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(30));
        for _ in 0..50 {
            let d = b.next_delay_jittered();
            assert!(d <= Duration::from_secs(3600) && d >= Duration::from_secs(15));
        }
    }
}
