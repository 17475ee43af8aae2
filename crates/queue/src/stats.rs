//! Queue depth and consumer count, read with a passive declare (no management plugin needed).

use lapin::Connection;
use lapin::options::QueueDeclareOptions;
use lapin::types::{FieldTable, ShortString};

use crate::error::QueueError;

/// A queue's ready messages (unacked ones are not counted) and consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

/// Reads `queue`'s stats with a passive declare on a throwaway channel: a missing queue closes
/// that channel with NOT_FOUND (reported as an error) and leaves the caller's channels alone.
pub async fn queue_stats(conn: &Connection, queue: &str) -> Result<QueueStats, QueueError> {
    let action = || format!("report on queue {queue}");
    let name = ShortString::try_new(queue).map_err(|_| {
        QueueError::InvalidTopology(format!("queue name {queue:?} is over 255 bytes"))
    })?;
    let channel = conn
        .create_channel()
        .await
        .map_err(QueueError::amqp(action()))?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(name, options, FieldTable::default())
        .await
        .map_err(QueueError::amqp(action()))?;
    // Best effort: the channel is dropped either way.
    let _ = channel.close(200, "OK".into()).await;
    Ok(QueueStats {
        messages: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}
