//! A topic's history, and the byte budget every topic's history shares.
//!
//! History is a cache for replay and resume: when a bound is reached, the oldest messages go
//! and publishing carries on. A topic keeps at most `--history-size` messages and
//! `--history-bytes-per-topic` bytes. Over all topics, history holds at most
//! `--history-bytes-total` bytes; a publish that passes it trims, in this order:
//!
//! 1. the oldest messages of the topic being published to, down to its fair share (the total
//!    divided by the topics holding history), under the lock the publish holds anyway;
//! 2. then, after that lock is released, the oldest messages of the topics holding the most,
//!    one topic lock at a time (found by reading each topic's figure, without its lock).
//!
//! So a topic that publishes a lot trims itself, and a topic that starts publishing once the
//! budget is full takes its share from the largest, instead of being left with one message.
//! Each lock is taken alone, so no two topics' locks are ever held together; concurrent
//! publishes may pass the total by the messages they are adding until they trim.
//!
//! Trimming only ever takes the oldest messages, so history stays consecutive seqs ending at
//! the topic's last seq, and a resume from before what is held answers `recovered: false`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::super::HISTORY_ENTRY_OVERHEAD;
use crate::protocol::MessageFrame;

/// The bytes a held message counts for.
pub fn cost(entry: &MessageFrame) -> usize {
    entry.frame.len() + HISTORY_ENTRY_OVERHEAD
}

/// The bytes history may hold, and what it holds now, over every topic.
#[derive(Debug)]
pub struct Budget {
    per_topic: usize,
    total: usize,
    held: AtomicUsize,
    /// Topics holding at least one message: the fair share is `total / holding`.
    holding: AtomicUsize,
}

impl Budget {
    pub fn new(per_topic: usize, total: usize) -> Self {
        Budget {
            per_topic,
            total,
            held: AtomicUsize::new(0),
            holding: AtomicUsize::new(0),
        }
    }

    /// Bytes held by every topic's history now.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// Whether history as a whole holds more than it may.
    pub fn over(&self) -> bool {
        self.held() > self.total
    }

    fn fair_share(&self) -> usize {
        self.total / self.holding.load(Relaxed).max(1)
    }
}

/// One topic's history: consecutive seqs, oldest first, ending at the topic's last seq.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Arc<MessageFrame>>,
    /// What `entries` count for in the budget.
    bytes: usize,
}

impl History {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<MessageFrame>> {
        self.entries.iter()
    }

    /// Keeps `entry` as the newest, then drops the oldest past this topic's bounds (`max_len`
    /// messages and the per-topic bytes) and, while history as a whole is over its total, past
    /// this topic's fair share. The newest message always stays.
    pub fn push(&mut self, entry: Arc<MessageFrame>, max_len: usize, budget: &Budget) {
        let bytes = cost(&entry);
        if self.entries.is_empty() {
            budget.holding.fetch_add(1, Relaxed);
        }
        self.entries.push_back(entry);
        self.bytes += bytes;
        budget.held.fetch_add(bytes, Relaxed);
        while self.len() > max_len || (self.len() > 1 && self.bytes > budget.per_topic) {
            self.pop_oldest(budget);
        }
        while self.len() > 1 && budget.over() && self.bytes > budget.fair_share() {
            self.pop_oldest(budget);
        }
    }

    /// Drops the oldest message; `false` when there was none.
    pub fn pop_oldest(&mut self, budget: &Budget) -> bool {
        let Some(entry) = self.entries.pop_front() else {
            return false;
        };
        let bytes = cost(&entry);
        self.bytes -= bytes;
        budget.held.fetch_sub(bytes, Relaxed);
        if self.entries.is_empty() {
            budget.holding.fetch_sub(1, Relaxed);
        }
        true
    }

    /// Drops everything (the topic is deleted).
    pub fn clear(&mut self, budget: &Budget) {
        while self.pop_oldest(budget) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_message_frame;

    /// A message whose frame costs `bytes` in all.
    fn entry(seq: u64, bytes: usize) -> Arc<MessageFrame> {
        let at = "2026-11-27T12:00:00.000Z";
        let bare = cost(&encode_message_frame("\"t\"", seq, "\"\"", at));
        let text = format!("\"{}\"", "x".repeat(bytes - bare));
        let entry = encode_message_frame("\"t\"", seq, &text, at);
        assert_eq!(cost(&entry), bytes);
        Arc::new(entry)
    }

    fn seqs(history: &History) -> Vec<u64> {
        history.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_topic_keeps_its_newest_within_its_count_and_bytes() {
        let budget = Budget::new(1000, 10_000);
        let mut h = History::default();
        for seq in 1..=5 {
            h.push(entry(seq, 300), 4, &budget);
        }
        assert_eq!(seqs(&h), [3, 4, 5], "1000 bytes hold three of 300");
        assert_eq!((h.bytes(), budget.held()), (900, 900));
        h.push(entry(6, 1000), 4, &budget);
        assert_eq!(seqs(&h), [6], "a message of the whole budget stands alone");
        h.clear(&budget);
        assert_eq!((budget.held(), budget.holding.load(Relaxed)), (0, 0));
    }

    #[test]
    fn over_the_total_a_topic_trims_itself_down_to_its_fair_share() {
        let budget = Budget::new(10_000, 3000);
        let (mut big, mut small) = (History::default(), History::default());
        for seq in 1..=3 {
            big.push(entry(seq, 900), 100, &budget);
        }
        small.push(entry(1, 300), 100, &budget);
        assert_eq!(budget.held(), 3000);
        // Over by 900: big holds more than its share (1500) and makes the room itself.
        big.push(entry(4, 900), 100, &budget);
        assert_eq!(seqs(&big), [2, 3, 4]);
        assert_eq!(budget.held(), 3000);
        // small is under its share: it keeps what it has; the caller trims the largest.
        small.push(entry(2, 300), 100, &budget);
        assert_eq!(seqs(&small), [1, 2]);
        assert!(budget.over());
    }
}
