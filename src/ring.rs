//! A bounded ring of the latest entries plus a count of every entry ever pushed:
//! session reports and delivery logs keep their tail, never their whole history.

use std::collections::VecDeque;

/// How many entries a report keeps per list (served, missed, deliveries); the
/// totals count them all.
pub const REPORT_TAIL: usize = 1000;

/// The latest `cap` entries and how many were pushed in all.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
    total: u64,
}

impl<T> Ring<T> {
    /// A ring keeping at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Ring<T> {
        Ring {
            items: VecDeque::new(),
            cap: cap.max(1),
            total: 0,
        }
    }

    /// Appends `x`, dropping the oldest entry when full; returns the dropped one.
    pub fn push(&mut self, x: T) -> Option<T> {
        let dropped = if self.items.len() >= self.cap {
            self.items.pop_front()
        } else {
            None
        };
        // room doubles from one entry up to `cap` (a deque starts at four: most of a
        // session's rings hold one or two entries, and there are thousands of sessions)
        let (len, room) = (self.items.len(), self.items.capacity());
        if len == room {
            self.items.reserve_exact(room.max(1).min(self.cap - len));
        }
        self.items.push_back(x);
        self.total += 1;
        dropped
    }

    /// Entries pushed in all, including those dropped.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The newest entry.
    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }
}

impl<T: Clone> Ring<T> {
    /// The kept entries, oldest first.
    pub fn to_vec(&self) -> Vec<T> {
        self.items.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_counts_everything() {
        let mut r = Ring::new(2);
        for i in 0..4 {
            r.push(i);
        }
        assert_eq!(r.push(4), Some(2), "the oldest kept entry drops out");
        assert_eq!(r.to_vec(), vec![3, 4]);
        assert_eq!(r.total(), 5);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn room_grows_from_one_entry_to_the_cap() {
        let mut r = Ring::new(5);
        let mut rooms = Vec::new();
        for i in 0..8 {
            r.push(i);
            rooms.push(r.items.capacity());
        }
        assert_eq!(rooms, [1, 2, 4, 4, 5, 5, 5, 5]);
        assert_eq!(r.to_vec(), vec![3, 4, 5, 6, 7]);
    }
}
