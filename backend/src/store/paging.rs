//! Filtered pagination over a creation-ordered list of ids.
//!
//! A cursor is a position in the underlying list (see [`Cursor`]); a page walks from there,
//! skipping records the caller may not see or did not ask for, and stops after `limit` matches. It
//! returns a cursor only when it has seen one more match, so `nextCursor` means "more follow".
//! Positions never shift: a deleted project leaves a gap in the sequence numbers, not a hole that
//! later projects move into.

use super::Cursor;

/// Collects one page while its caller walks positions in order.
#[derive(Debug)]
pub(crate) struct Pager<T> {
    limit: usize,
    items: Vec<T>,
    last: u64,
    next_cursor: Option<Cursor>,
}

impl<T> Pager<T> {
    /// `limit` must be at least 1 (see `validation::check_limit`).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            items: Vec::with_capacity(limit.min(super::MAX_PAGE)),
            last: 0,
            next_cursor: None,
        }
    }

    /// Offers what is at `position` (`None`: nothing that matches). Returns `false` once the page
    /// is complete and the walk should stop.
    pub(crate) fn offer(&mut self, position: u64, item: Option<T>) -> bool {
        let Some(item) = item else {
            return true;
        };
        if self.items.len() < self.limit {
            self.items.push(item);
            self.last = position;
            true
        } else {
            self.next_cursor = Some(Cursor::new(self.last.saturating_add(1)));
            false
        }
    }

    pub(crate) fn finish(self) -> (Vec<T>, Option<Cursor>) {
        (self.items, self.next_cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[Option<u32>], start: u64, limit: usize) -> (Vec<u32>, Option<u64>) {
        let mut pager = Pager::new(limit);
        for (i, item) in items.iter().enumerate().skip(start as usize) {
            if !pager.offer(i as u64, *item) {
                break;
            }
        }
        let (items, next) = pager.finish();
        (items, next.map(|c| c.offset))
    }

    #[test]
    fn cursor_only_when_another_match_follows() {
        let items = [Some(0), None, Some(2), None, Some(4), None];
        assert_eq!(page(&items, 0, 2), (vec![0, 2], Some(3)));
        assert_eq!(page(&items, 3, 2), (vec![4], None));
        assert_eq!(page(&items, 0, 3), (vec![0, 2, 4], None));
        assert_eq!(page(&items, 0, 1), (vec![0], Some(1)));
        assert_eq!(page(&items, 1, 1), (vec![2], Some(3)));
        assert_eq!(page(&items, 99, 1), (vec![], None));
    }
}
