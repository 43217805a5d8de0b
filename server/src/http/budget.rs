//! A memory budget for large response bodies, and the blob body that
//! streams within it: a download takes a share of the budget (in KiB) for
//! each chunk before reading it from the store, and gives it back as soon
//! as that chunk has left the process. Chunks past the budget wait.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::HttpError;
use super::watchdog::DeadlineGuard;
use crate::store::Store;

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

/// Bytes read from the store, and budgeted, per chunk of a download.
pub const CHUNK: usize = 64 * 1024;

/// One chunk in flight: its bytes and the budget share they hold. hyper
/// (and h2) keep the `Bytes` until the chunk has been written to the TLS
/// stream; dropping it then returns the share.
struct Chunk {
    /// The bytes.
    data: Vec<u8>,
    /// Released with the bytes.
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// The next chunk being read.
type ChunkRead = Pin<Box<dyn Future<Output = Result<Bytes, io::Error>> + Send>>;

/// A blob download streamed from the store: each chunk takes its budget
/// share before it is read, and gives it back once it has left the process,
/// so the bytes of all downloads in memory never exceed the budget whatever
/// the clients do. The body fails (and hyper drops the connection) past its
/// time limit.
pub struct BlobBody {
    /// Where the bytes are.
    store: Arc<dyn Store>,
    /// The in-flight memory budget.
    budget: Arc<ByteBudget>,
    /// Which blob.
    sha256: Arc<str>,
    /// Its size.
    size: u64,
    /// Bytes handed to hyper so far.
    sent: u64,
    /// The chunk being read, if any.
    next: Option<ChunkRead>,
    /// When the whole body must have been sent.
    deadline: tokio::time::Instant,
    /// Tells the connection's write watch about the deadline.
    _guard: Option<DeadlineGuard>,
}

impl BlobBody {
    /// A body for the blob `sha256` of `size` bytes, to be sent by
    /// `deadline` (`guard` arms the same deadline on the connection).
    pub fn new(
        store: Arc<dyn Store>,
        budget: Arc<ByteBudget>,
        sha256: &str,
        size: u64,
        deadline: tokio::time::Instant,
        guard: Option<DeadlineGuard>,
    ) -> Self {
        BlobBody {
            store,
            budget,
            sha256: sha256.into(),
            size,
            sent: 0,
            next: None,
            deadline,
            _guard: guard,
        }
    }

    /// Reads the chunk at `offset`, `len` bytes, after reserving them.
    fn read(&self, offset: u64, len: usize) -> ChunkRead {
        let (store, budget, sha256) =
            (self.store.clone(), self.budget.clone(), self.sha256.clone());
        Box::pin(async move {
            let permit = budget
                .acquire(len as u64)
                .await
                .map_err(|_| io::Error::other("server shutting down"))?;
            let data = store
                .blob_chunk(&sha256, offset, len)
                .await
                .map_err(io::Error::other)?
                .ok_or_else(|| io::Error::other("blob vanished during a download"))?;
            if data.len() != len {
                return Err(io::Error::other("blob shorter than its recorded size"));
            }
            Ok(Bytes::from_owner(Chunk {
                data,
                _permit: permit,
            }))
        })
    }
}

impl Body for BlobBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.sent >= this.size {
            return Poll::Ready(None);
        }
        if tokio::time::Instant::now() >= this.deadline {
            tracing::debug!(blob = %this.sha256, "download over its time limit: cut");
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "download took longer than its time limit",
            ))));
        }
        let sent = this.sent;
        let len = usize::try_from((this.size - sent).min(CHUNK as u64)).unwrap_or(CHUNK);
        if this.next.is_none() {
            this.next = Some(this.read(sent, len));
        }
        let Some(next) = this.next.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(next.as_mut().poll(cx));
        this.next = None;
        Poll::Ready(Some(result.map(|bytes| {
            this.sent += bytes.len() as u64;
            Frame::data(bytes)
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.size
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size - self.sent.min(self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_come_back_when_permits_are_dropped() {
        let budget = ByteBudget::new(10 * UNIT);
        let a = budget.acquire(6 * UNIT).await.unwrap();
        let chunk = Bytes::from_owner(Chunk {
            data: vec![0; 10],
            _permit: a,
        });
        let copy = chunk.clone();
        // 6 of 10 KiB taken: 5 more must wait, until every handle on the
        // chunk's bytes is gone.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.acquire(5 * UNIT),
        );
        assert!(waiting.await.is_err());
        drop(chunk);
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.acquire(5 * UNIT),
        );
        assert!(waiting.await.is_err());
        drop(copy);
        let b = budget.acquire(5 * UNIT).await.unwrap();
        // Larger than the whole budget: takes all of it rather than never.
        drop(b);
        let all = budget.acquire(1 << 40).await.unwrap();
        assert_eq!(all.num_permits(), 10);
    }
}
