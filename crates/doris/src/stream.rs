//! The stream every source hands out: batches produced by background tasks into a bounded
//! channel (so memory stays flat however fast the producers are), cut at the row limit.

use arrow::array::RecordBatch;
use tokio::sync::mpsc;
use trainstore_core::{RecordBatchStream, Result};

/// Batches from `rx`, at most `limit` rows in all; ends at the first error. Dropping the
/// stream closes the channel, which stops the producers.
pub(crate) fn limited(
    rx: mpsc::Receiver<Result<RecordBatch>>,
    limit: Option<usize>,
) -> RecordBatchStream {
    let stream = futures::stream::unfold(
        (rx, limit.unwrap_or(usize::MAX)),
        |(mut rx, remaining)| async move {
            if remaining == 0 {
                return None;
            }
            let item = rx.recv().await?;
            Some(match item {
                Ok(b) if b.num_rows() > remaining => (Ok(b.slice(0, remaining)), (rx, 0)),
                Ok(b) => {
                    let left = remaining - b.num_rows();
                    (Ok(b), (rx, left))
                }
                Err(e) => (Err(e), (rx, 0)),
            })
        },
    );
    Box::pin(stream)
}
