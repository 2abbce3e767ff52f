//! The established path allocates nothing: a counting global allocator around the system
//! one (the only `unsafe` in this crate, test-only: `GlobalAlloc` is an unsafe trait)
//! watches the CE and the BR process packets of live flows both ways, fragments and
//! reassembly included once the pools are warm.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use mape_dataplane::*;

struct Counting;

static COUNT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the test's own thread is watched: the harness's threads allocate as they like.
    static ON: Cell<bool> = const { Cell::new(false) };
}

fn watching() -> bool {
    ON.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: delegates to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if watching() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if watching() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct CountSink(usize);

impl Sink for CountSink {
    fn emit(&mut self, _d: Direction, _p: &[u8]) {
        self.0 += 1;
    }
}

#[test]
fn established_paths_do_not_allocate() {
    let mut c = ce(false);
    let mut b = br();
    let mut sink = CountSink(0);
    let up = udp4(LAN_HOST, PORT, REMOTE, 53, 64, &[1u8; 64]);
    let syn = tcp_syn4(LAN_HOST, PORT, REMOTE, 443, 64, 1460);
    let down = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 64, &[2u8; 64]));
    let inet = udp4(REMOTE, 53, EXT, PORT, 64, &[3u8; 1400]);
    let mut big = udp4(REMOTE, 53, EXT, PORT, 64, &[4u8; 1472]);
    set_frag(&mut big, 9, false, false, 0);
    let from_ce = encap(ce6(), br6(), &udp4(EXT, PORT, REMOTE, 53, 64, &[5u8; 64]));
    let mut frags = Vec::new();
    b.process(t(0), &big, &mut frags);
    assert_eq!(frags.len(), 2);
    let inputs_ce: Vec<&[u8]> = vec![&up, &syn, &down, &frags[0].1, &frags[1].1];
    let inputs_br: Vec<&[u8]> = vec![&inet, &big, &from_ce];
    // Warm up: sessions, reassembly slots.
    for i in 0..3 {
        c.process_batch(t(i), &inputs_ce, &mut sink);
        b.process_batch(t(i), &inputs_br, &mut sink);
    }
    ON.with(|on| on.set(true));
    for i in 0..1000 {
        c.process_batch(t(10 + i), &inputs_ce, &mut sink);
        b.process_batch(t(10 + i), &inputs_br, &mut sink);
    }
    ON.with(|on| on.set(false));
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        0,
        "allocations on the hot path"
    );
    assert_eq!(
        c.drops().total(),
        0,
        "{:?}",
        c.drops().nonzero().collect::<Vec<_>>()
    );
    assert_eq!(b.drops().total(), 0);
    assert!(sink.0 > 8000);
}
