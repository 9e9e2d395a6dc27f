//! A small deterministic generator of random message values for property tests.
//!
//! proptest supplies the seed (so failures shrink to a seed and reproduce); the generated `random`
//! functions of each message draw their fields from this generator, keeping arrays short so that a
//! whole message stays small.

use super::wire::{KStr, RawTaggedField, Uuid};
use bytes::Bytes;

/// A seeded xorshift generator.
pub struct Gen {
    state: u64,
    depth: u32,
}

impl Gen {
    /// A generator for `seed`; the same seed gives the same values.
    pub fn new(seed: u64) -> Gen {
        Gen {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            depth: 0,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// True once in `n` draws.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly small numbers, sometimes extremes, so both varint widths and sign bits get exercised.
    fn int(&mut self) -> i64 {
        match self.below(4) {
            0 => self.next() as i64,
            1 => -1,
            _ => self.below(1000) as i64,
        }
    }

    pub fn i8(&mut self) -> i8 {
        self.int() as i8
    }
    pub fn i16(&mut self) -> i16 {
        self.int() as i16
    }
    pub fn i32(&mut self) -> i32 {
        self.int() as i32
    }
    pub fn i64(&mut self) -> i64 {
        self.int()
    }
    pub fn u16(&mut self) -> u16 {
        self.int() as u16
    }
    pub fn u32(&mut self) -> u32 {
        self.int() as u32
    }
    pub fn f64(&mut self) -> f64 {
        self.below(1_000_000) as f64 / 8.0
    }
    pub fn boolean(&mut self) -> bool {
        self.one_in(2)
    }
    pub fn uuid(&mut self) -> Uuid {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&self.next().to_be_bytes());
        u[8..].copy_from_slice(&self.next().to_be_bytes());
        Uuid(u)
    }

    /// A short string, sometimes with multi-byte characters.
    pub fn kstr(&mut self) -> KStr {
        let len = self.below(12) as usize;
        let s: String = (0..len)
            .map(|_| match self.below(20) {
                0 => 'é',
                1 => '🦀',
                n => (b'a' + n as u8) as char,
            })
            .collect();
        KStr::from(s)
    }

    pub fn bytes(&mut self) -> Bytes {
        let len = self.below(24) as usize;
        (0..len)
            .map(|_| self.next() as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// A short vector; nested arrays get shorter so messages stay small.
    pub fn vec<T>(&mut self, mut elem: impl FnMut(&mut Gen) -> T) -> Vec<T> {
        let max = 4u64.saturating_sub(u64::from(self.depth)).max(1);
        let len = self.below(max) as usize;
        self.depth += 1;
        let v = (0..len).map(|_| elem(self)).collect();
        self.depth -= 1;
        v
    }

    /// Sometimes one or two tagged fields with tags no schema uses, in ascending order.
    pub fn unknown_tagged_fields(&mut self) -> Vec<RawTaggedField> {
        let n = if self.one_in(4) { self.below(3) } else { 0 };
        (0..n)
            .map(|k| RawTaggedField {
                tag: 10_000 + k as u32 * 7,
                data: self.bytes(),
            })
            .collect()
    }
}
