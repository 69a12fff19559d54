//! The pipeline's input queue, bounded by the bytes it holds rather than by a number of chunks.
//!
//! A producer's bursts (pg_dump's fast COPY, a base backup's large files) arrive faster than
//! compression can take them; a queue of N chunks absorbs N × (chunk size) bytes, which is
//! either too little for small chunks or too much memory for large ones. Here the budget is
//! in bytes: a chunk is queued once the bytes it occupies fit, and its bytes are handed back
//! only when the last reference to it is dropped (the encoder and the plaintext hash thread
//! both done with it), so the bound covers every chunk in flight, not just those waiting.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::codec::EncodeMsg;

/// The receiving side went away (the encoder failed or was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Why [`ByteSender::try_send`] did not queue a chunk.
#[derive(Debug)]
pub(crate) enum TrySendError {
    /// No room for it now: the chunk, handed back.
    Full(Bytes),
    /// The receiving side went away.
    Closed,
}

/// A queue of chunks into the encoder holding at most `budget` bytes (a single chunk larger
/// than the budget is let through alone).
pub(crate) fn byte_queue(budget: usize) -> (ByteSender, ByteReceiver) {
    let budget = budget.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(budget));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        ByteSender {
            tx,
            permits: Arc::clone(&permits),
            budget,
        },
        ByteReceiver { rx, permits },
    )
}

/// The producing side of [`byte_queue`].
#[derive(Debug)]
pub(crate) struct ByteSender {
    tx: mpsc::UnboundedSender<EncodeMsg>,
    permits: Arc<Semaphore>,
    budget: usize,
}

impl ByteSender {
    /// Waits until `chunk`'s bytes fit in the budget, then queues it. Its bytes count against
    /// the budget until every reference to it is dropped. The cost is the chunk's allocation
    /// where it owns one alone (a read buffer filled to half its capacity occupies all of it),
    /// else its length; at least 1, at most the whole budget.
    pub(crate) async fn send(&self, chunk: Bytes) -> Result<(), Closed> {
        let (chunk, cost) = self.cost(chunk)?;
        self.send_costing(chunk, cost).await
    }

    /// [`send`](Self::send) of a chunk whose memory the caller knows better than the queue
    /// can (a pooled buffer larger than its contents): `cost` bytes of the budget.
    pub(crate) async fn send_with_cost(&self, chunk: Bytes, cost: usize) -> Result<(), Closed> {
        let cost = u32::try_from(cost.clamp(1, self.budget)).map_err(|_| Closed)?;
        self.send_costing(chunk, cost).await
    }

    async fn send_costing(&self, chunk: Bytes, cost: u32) -> Result<(), Closed> {
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(cost)
            .await
            .map_err(|_| Closed)?;
        self.queue(chunk, permit)
    }

    /// [`send`](Self::send) without waiting: `Full` hands the chunk back when its bytes do
    /// not fit now.
    pub(crate) fn try_send(&self, chunk: Bytes) -> Result<(), TrySendError> {
        let (chunk, cost) = self.cost(chunk).map_err(|_| TrySendError::Closed)?;
        match Arc::clone(&self.permits).try_acquire_many_owned(cost) {
            Ok(permit) => self.queue(chunk, permit).map_err(|_| TrySendError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(TrySendError::Full(chunk)),
            Err(tokio::sync::TryAcquireError::Closed) => Err(TrySendError::Closed),
        }
    }

    /// `chunk` (its allocation alone if it owns one) and what it costs of the budget.
    fn cost(&self, chunk: Bytes) -> Result<(Bytes, u32), Closed> {
        let (chunk, cost) = match chunk.try_into_mut() {
            Ok(unique) => {
                let cost = unique.capacity();
                (unique.freeze(), cost)
            }
            Err(shared) => {
                let cost = shared.len();
                (shared, cost)
            }
        };
        let cost = u32::try_from(cost.clamp(1, self.budget)).map_err(|_| Closed)?;
        Ok((chunk, cost))
    }

    fn queue(&self, chunk: Bytes, permit: OwnedSemaphorePermit) -> Result<(), Closed> {
        let chunk = Bytes::from_owner(Held {
            chunk,
            _permit: permit,
        });
        self.tx.send(EncodeMsg::Data(chunk)).map_err(|_| Closed)
    }

    /// Marks the end of the input: the encoder finishes its chain only on this message.
    pub(crate) fn finish(self) -> Result<(), Closed> {
        self.tx.send(EncodeMsg::Finish).map_err(|_| Closed)
    }
}

/// The consuming side of [`byte_queue`].
#[derive(Debug)]
pub(crate) struct ByteReceiver {
    rx: mpsc::UnboundedReceiver<EncodeMsg>,
    permits: Arc<Semaphore>,
}

impl ByteReceiver {
    /// The next message, from a blocking thread; `None` once the sender is gone.
    pub(crate) fn blocking_recv(&mut self) -> Option<EncodeMsg> {
        self.rx.blocking_recv()
    }

    /// The next message; `None` once the sender is gone.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<EncodeMsg> {
        self.rx.recv().await
    }
}

impl Drop for ByteReceiver {
    fn drop(&mut self) {
        // A producer waiting for room learns at once that nobody will make any.
        self.permits.close();
    }
}

/// A queued chunk with its share of the budget, handed back when the chunk is dropped.
struct Held {
    chunk: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.chunk
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::BytesMut;

    use super::*;

    fn data(msg: Option<EncodeMsg>) -> Bytes {
        match msg {
            Some(EncodeMsg::Data(b)) => b,
            other => panic!("expected data, got {other:?}"),
        }
    }

    /// A producer much faster than its consumer never has more than the budget's bytes in
    /// flight, counting the chunks the consumer still holds (as the hash thread does), and
    /// goes on as soon as they are dropped.
    #[tokio::test]
    async fn the_budget_bounds_the_bytes_in_flight() {
        const CHUNK: usize = 64 << 10;
        const BUDGET: usize = 4 * CHUNK;
        let (tx, mut rx) = byte_queue(BUDGET);
        let sent = Arc::new(AtomicUsize::new(0));
        let producer = tokio::spawn({
            let sent = Arc::clone(&sent);
            async move {
                for i in 0..32u8 {
                    tx.send(Bytes::from(vec![i; CHUNK])).await.unwrap();
                    sent.fetch_add(CHUNK, Ordering::SeqCst);
                }
                tx.finish().unwrap();
            }
        });
        // Take chunks but keep them alive: the producer must stop at the budget.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(data(rx.recv().await));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            BUDGET,
            "the producer went past the budget while the consumer held every chunk"
        );
        // Dropping one held chunk makes room for exactly one more.
        held.pop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sent.load(Ordering::SeqCst), BUDGET + CHUNK);
        drop(held);
        let mut got = 4;
        while let Some(msg) = rx.recv().await {
            match msg {
                EncodeMsg::Data(b) => {
                    assert_eq!(b.len(), CHUNK);
                    got += 1;
                }
                EncodeMsg::Finish => break,
            }
        }
        assert_eq!(got, 32);
        producer.await.unwrap();
    }

    /// A chunk that owns a larger allocation costs its capacity, not its length: a read
    /// buffer filled to a quarter holds the budget alone.
    #[tokio::test]
    async fn a_chunk_costs_its_allocation() {
        let (tx, mut rx) = byte_queue(1 << 20);
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.extend_from_slice(&[1; 256 << 10]);
        tx.send(buf.freeze()).await.unwrap();
        let first = data(rx.recv().await);
        assert_eq!(first.len(), 256 << 10);
        let second = tokio::time::timeout(
            Duration::from_millis(50),
            tx.send(Bytes::from(vec![2; 1024])),
        )
        .await;
        assert!(second.is_err(), "the budget is taken by the first chunk");
        drop(first);
        tx.send(Bytes::from(vec![2; 1024])).await.unwrap();
    }

    /// A chunk larger than the budget passes alone instead of waiting forever, and a gone
    /// receiver fails the sender instead of leaving it waiting.
    #[tokio::test]
    async fn oversized_chunks_pass_and_a_gone_receiver_fails_the_sender() {
        let (tx, mut rx) = byte_queue(1024);
        tx.send(Bytes::from(vec![0; 4096])).await.unwrap();
        let held = data(rx.recv().await);
        let waiting = tokio::spawn(async move { tx.send(Bytes::from(vec![0; 10])).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(Closed));
        drop(held);
    }
}
