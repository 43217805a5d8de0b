//! A memory budget for large response bodies, and the blob body that
//! streams within it: a download takes a share of the budget (in KiB) for
//! each chunk before reading it from the store, and gives it back as soon
//! as that chunk has left the process. Chunks past the budget wait.

use std::collections::VecDeque;
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

/// Budget units for `size` bytes.
fn units(size: u64) -> u32 {
    u32::try_from(size.div_ceil(UNIT)).unwrap_or(u32::MAX)
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
        let units = units(size).clamp(1, self.total);
        self.units
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| HttpError::unavailable("le serveur s'arrête"))
    }
}

/// Bytes per chunk of a download: the unit sent to hyper and budgeted.
pub const CHUNK: usize = 64 * 1024;

/// Chunks read from the store at once (1 MiB): each store read locates its
/// offset from the start of the blob, so reading one chunk per call would
/// make a download quadratic in the blob's size.
const CHUNKS_PER_READ: usize = 16;

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

/// The next chunks being read.
type ChunkRead = Pin<Box<dyn Future<Output = Result<VecDeque<Bytes>, io::Error>> + Send>>;

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
    /// Chunks read, not yet handed to hyper (each holds its budget share).
    ready: VecDeque<Bytes>,
    /// The chunks being read, if any.
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
            ready: VecDeque::new(),
            next: None,
            deadline,
            _guard: guard,
        }
    }

    /// Reads the `len` bytes at `offset` (at most `CHUNKS_PER_READ`
    /// chunks) after reserving them; each chunk carries its own share.
    fn read(&self, offset: u64, len: usize) -> ChunkRead {
        let (store, budget, sha256) =
            (self.store.clone(), self.budget.clone(), self.sha256.clone());
        Box::pin(async move {
            let mut permit = budget
                .acquire(len as u64)
                .await
                .map_err(|_| io::Error::other("server shutting down"))?;
            let count = len.div_ceil(CHUNK);
            let chunks = store
                .blob_chunks(&sha256, offset, CHUNK, count)
                .await
                .map_err(io::Error::other)?
                .ok_or_else(|| io::Error::other("blob vanished during a download"))?;
            if chunks.len() != count || chunks.iter().map(Vec::len).sum::<usize>() != len {
                return Err(io::Error::other("blob shorter than its recorded size"));
            }
            let mut ready = VecDeque::with_capacity(count);
            let last = chunks.len() - 1;
            for (i, data) in chunks.into_iter().enumerate() {
                // Each chunk takes its own units; the last one takes the rest.
                let share = if i == last {
                    permit.num_permits()
                } else {
                    usize::try_from(units(data.len() as u64)).unwrap_or(usize::MAX)
                };
                let share = permit
                    .split(share.min(permit.num_permits()))
                    .ok_or_else(|| io::Error::other("budget share accounting"))?;
                ready.push_back(Bytes::from_owner(Chunk {
                    data,
                    _permit: share,
                }));
            }
            Ok(ready)
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
        if this.ready.is_empty() {
            // Bytes read so far: those sent and those waiting.
            let read = this.sent;
            let span = (CHUNK * CHUNKS_PER_READ) as u64;
            let len = usize::try_from((this.size - read).min(span)).unwrap_or(CHUNK);
            if this.next.is_none() {
                this.next = Some(this.read(read, len));
            }
            let Some(next) = this.next.as_mut() else {
                return Poll::Ready(None);
            };
            let result = ready!(next.as_mut().poll(cx));
            this.next = None;
            match result {
                Ok(chunks) => this.ready = chunks,
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        match this.ready.pop_front() {
            Some(bytes) => {
                this.sent += bytes.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            None => Poll::Ready(Some(Err(io::Error::other("empty read from the store")))),
        }
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
