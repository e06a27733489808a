//! A frame inside its buffer: the bytes the pipeline works on plus the free
//! room in front of them, so a rewrite can grow the frame at the front
//! (IPIP encapsulation) or shrink it (an ICMP error built in place).
//!
//! The worker makes one from an mbuf's data room (`buf_addr`, `buf_len`) and
//! window (`data_off`, `data_len`) and writes the window back after the
//! pipeline; tests make one from a byte vector with some headroom. Nothing
//! here allocates.

/// A frame (`room[head..head + len]`) in a buffer with room around it.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    room: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> PacketBuf<'a> {
    /// The frame `room[head..head + len]`; the window is clamped to `room`.
    #[inline]
    #[must_use]
    pub fn new(room: &'a mut [u8], head: usize, len: usize) -> Self {
        let head = head.min(room.len());
        let len = len.min(room.len() - head);
        Self { room, head, len }
    }

    /// A whole slice as the frame, with no headroom.
    #[inline]
    #[must_use]
    pub fn whole(frame: &'a mut [u8]) -> Self {
        let len = frame.len();
        Self {
            room: frame,
            head: 0,
            len,
        }
    }

    /// The frame's bytes.
    #[inline]
    #[must_use]
    pub fn frame(&self) -> &[u8] {
        &self.room[self.head..self.head + self.len]
    }

    /// The frame's bytes, writable.
    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.room[self.head..self.head + self.len]
    }

    /// Where the frame starts in the buffer and how long it is.
    #[inline]
    #[must_use]
    pub fn window(&self) -> (usize, usize) {
        (self.head, self.len)
    }

    /// Free bytes in front of the frame.
    #[inline]
    #[must_use]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Grows the frame by `n` bytes at the front (their content is whatever
    /// the buffer held). False, changing nothing, without the headroom.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        if n > self.head {
            return false;
        }
        self.head -= n;
        self.len += n;
        true
    }

    /// Drops `n` bytes from the front of the frame (at most all of it).
    #[inline]
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head += n;
        self.len -= n;
    }

    /// Makes the frame exactly `len` bytes, growing into the room after it
    /// (grown bytes keep whatever the buffer held). False, changing
    /// nothing, if the buffer is too short.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.head + len > self.room.len() {
            return false;
        }
        self.len = len;
        true
    }

    /// Shortens the frame to `len` bytes (no-op if already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_uses_headroom_and_truncate_shrinks() {
        let mut buf = [0u8; 16];
        buf[4..8].copy_from_slice(b"abcd");
        let mut p = PacketBuf::new(&mut buf, 4, 4);
        assert_eq!(p.frame(), b"abcd");
        assert!(!p.prepend(5));
        assert!(p.prepend(2));
        assert_eq!((p.window(), p.headroom()), ((2, 6), 2));
        p.frame_mut()[..2].copy_from_slice(b"xy");
        assert_eq!(p.frame(), b"xyabcd");
        p.truncate(3);
        assert_eq!(p.frame(), b"xya");
        p.truncate(10);
        assert_eq!(p.frame(), b"xya");
        assert!(p.set_len(5) && !p.set_len(15));
        assert_eq!(p.frame(), b"xyabc", "grown bytes keep what the buffer held");
        p.truncate(3);
        p.advance(1);
        assert_eq!((p.frame(), p.window()), (&b"ya"[..], (3, 2)));
    }

    #[test]
    fn window_is_clamped_to_the_buffer() {
        let mut buf = [0u8; 8];
        let p = PacketBuf::new(&mut buf, 6, 10);
        assert_eq!(p.window(), (6, 2));
        let mut whole = [1u8; 3];
        assert_eq!(PacketBuf::whole(&mut whole).window(), (0, 3));
    }
}
