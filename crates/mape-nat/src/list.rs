//! Intrusive doubly linked lists over arena indices: the timer FIFOs and the per-host lists
//! of unanswered sessions. O(1) push, unlink and pop; no allocation.

/// The "no element" index.
pub(crate) const NIL: u32 = u32::MAX;

/// The links an element keeps for one list it may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            prev: NIL,
            next: NIL,
        }
    }
}

/// Head, tail and length of one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) len: u32,
}

impl Default for List {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl List {
    /// Appends `idx` at the tail. `link` selects which of an element's links this list uses.
    pub(crate) fn push_back<T>(
        &mut self,
        arena: &mut [T],
        idx: u32,
        link: fn(&mut T) -> &mut Link,
    ) {
        let old_tail = self.tail;
        {
            let l = link(&mut arena[idx as usize]);
            l.prev = old_tail;
            l.next = NIL;
        }
        if old_tail == NIL {
            self.head = idx;
        } else {
            link(&mut arena[old_tail as usize]).next = idx;
        }
        self.tail = idx;
        self.len += 1;
    }

    /// Removes `idx`, which must be in this list.
    pub(crate) fn unlink<T>(&mut self, arena: &mut [T], idx: u32, link: fn(&mut T) -> &mut Link) {
        let Link { prev, next } = *link(&mut arena[idx as usize]);
        if prev == NIL {
            self.head = next;
        } else {
            link(&mut arena[prev as usize]).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            link(&mut arena[next as usize]).prev = prev;
        }
        *link(&mut arena[idx as usize]) = Link::default();
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(x: &mut Link) -> &mut Link {
        x
    }

    fn collect(list: &List, arena: &mut [Link]) -> Vec<u32> {
        let mut out = vec![];
        let mut i = list.head;
        while i != NIL {
            out.push(i);
            i = arena[i as usize].next;
        }
        out
    }

    #[test]
    fn push_unlink_keeps_order() {
        let mut arena = vec![Link::default(); 5];
        let mut list = List::default();
        for i in 0..5 {
            list.push_back(&mut arena, i, l);
        }
        list.unlink(&mut arena, 0, l);
        list.unlink(&mut arena, 4, l);
        list.unlink(&mut arena, 2, l);
        assert_eq!(collect(&list, &mut arena), vec![1, 3]);
        assert_eq!((list.head, list.tail, list.len), (1, 3, 2));
        list.push_back(&mut arena, 0, l);
        list.unlink(&mut arena, 1, l);
        list.unlink(&mut arena, 3, l);
        assert_eq!(collect(&list, &mut arena), vec![0]);
        list.unlink(&mut arena, 0, l);
        assert_eq!(list, List::default());
    }
}
