//! Time for the daemon: the real clock, or a simulated one that jumps ahead
//! whenever the daemon sleeps (tests live through a week in a second).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Duration;

/// A boxed future, as [`Clock::sleep`] returns.
pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The daemon's source of time.
pub trait Clock: Send + Sync {
    /// The current wall-clock time (UTC).
    fn now(&self) -> time::OffsetDateTime;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_>;
}

/// The system clock and tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when someone sleeps on it: `sleep(d)` advances
/// the time by `d` at once. Futures from [`SimulatedClock::until`] complete
/// when the time passes their deadline.
#[derive(Debug)]
pub struct SimulatedClock {
    /// (current time, tasks waiting in `until`).
    state: Mutex<(time::OffsetDateTime, Vec<Waker>)>,
}

impl SimulatedClock {
    /// A clock starting at `start`.
    pub fn new(start: time::OffsetDateTime) -> Self {
        SimulatedClock {
            state: Mutex::new((start, Vec::new())),
        }
    }

    /// Moves the time forward by `d` and wakes the `until` waiters.
    pub fn advance(&self, d: Duration) {
        let wakers = match self.state.lock() {
            Ok(mut s) => {
                s.0 += d;
                std::mem::take(&mut s.1)
            }
            Err(_) => Vec::new(),
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Completes once the simulated time is at or past `deadline`.
    pub fn until(&self, deadline: time::OffsetDateTime) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| match self.state.lock() {
            Ok(mut s) if s.0 < deadline => {
                s.1.push(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        })
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> time::OffsetDateTime {
        self.state
            .lock()
            .map(|s| s.0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_> {
        self.advance(duration);
        Box::pin(tokio::task::yield_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_time_moves_only_on_sleep() {
        let start = time::OffsetDateTime::UNIX_EPOCH;
        let c = SimulatedClock::new(start);
        assert_eq!(c.now(), start);
        c.sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now(), start + time::Duration::hours(1));
        let deadline = start + time::Duration::hours(2);
        let waiter = async { c.until(deadline).await };
        let sleeper = async {
            c.sleep(Duration::from_secs(1800)).await;
            c.sleep(Duration::from_secs(1800)).await;
        };
        tokio::join!(waiter, sleeper);
        assert!(c.now() >= deadline);
    }
}
