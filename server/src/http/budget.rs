//! A memory budget for large response bodies: a download takes a share of
//! the budget (in KiB) before its bytes are read, and gives it back when its
//! body has been sent or dropped. Downloads past the budget wait.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::HttpError;

/// Granularity of the budget.
const UNIT: u64 = 1024;

/// Bytes that may be held by response bodies at once.
pub struct ByteBudget {
    /// One permit per KiB.
    units: std::sync::Arc<Semaphore>,
    /// Total permits (a single body never asks for more).
    total: u32,
}

impl ByteBudget {
    /// A budget of `bytes` (rounded up to whole KiB).
    pub fn new(bytes: u64) -> Self {
        let total = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        ByteBudget {
            units: std::sync::Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until `size` bytes fit, and reserves them.
    pub async fn acquire(&self, size: u64) -> Result<OwnedSemaphorePermit, HttpError> {
        let units = u32::try_from(size.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        self.units
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| HttpError::unavailable("le serveur s'arrête"))
    }
}

/// A body that holds its budget share until it is dropped.
pub struct BudgetedBody {
    /// The bytes, taken when sent.
    data: Option<Bytes>,
    /// Released with the body.
    _permit: OwnedSemaphorePermit,
}

impl BudgetedBody {
    /// Wraps `bytes` with the share reserved for them.
    pub fn new(bytes: Vec<u8>, permit: OwnedSemaphorePermit) -> Self {
        BudgetedBody {
            data: Some(Bytes::from(bytes)),
            _permit: permit,
        }
    }
}

impl Body for BudgetedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_come_back_when_bodies_are_dropped() {
        let budget = ByteBudget::new(10 * UNIT);
        let a = budget.acquire(6 * UNIT).await.unwrap();
        let body = BudgetedBody::new(vec![0; 10], a);
        // 6 of 10 KiB taken: 5 more must wait.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.acquire(5 * UNIT),
        );
        assert!(waiting.await.is_err());
        drop(body);
        let b = budget.acquire(5 * UNIT).await.unwrap();
        // Larger than the whole budget: takes all of it rather than never.
        drop(b);
        let all = budget.acquire(1 << 40).await.unwrap();
        assert_eq!(all.num_permits(), 10);
    }
}
