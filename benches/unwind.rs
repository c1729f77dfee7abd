//! Capture time per thread: the DWARF unwind (failstop's default, through
//! code without frame pointers) against the frame-pointer walk (the
//! fallback), side by side on the same stack, `DEPTH` frames below the
//! thread's entry, from a `getcontext` taken there (no signal delivery in
//! the figure: the same for both). Also prints the unwinder's preparation
//! time and its section data.
//!
//! `cargo bench -p failstop-benches --bench unwind`

use criterion::{Criterion, criterion_group, criterion_main};
use failstop::__unwind_bench as ub;
use std::hint::black_box;
use std::time::Instant;

/// Frames between the thread's entry and the capture.
const DEPTH: usize = 16;

#[inline(never)]
fn recurse(depth: usize, c: &mut Criterion) {
    if depth > 0 {
        recurse(black_box(depth - 1), c);
        black_box(());
        return;
    }
    // SAFETY: ucontext_t is plain data that getcontext fills in.
    let mut uc: libc::ucontext_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer; the context's stack (this frame and its
    // callers) stays live while the benches below run deeper down.
    assert_eq!(unsafe { libc::getcontext(&mut uc) }, 0);
    let ctx = (&uc as *const libc::ucontext_t).cast::<libc::c_void>();
    let (lo, hi) = ub::stack_bounds();
    let mut out = [0usize; 64];
    // The first unwind finds every rule in .eh_frame (a cold cache, as in
    // a dump's one capture per thread); the benches below then hit the
    // rule cache.
    let t0 = Instant::now();
    // SAFETY: `ctx` is this thread's live context (here and below).
    let (nd, root) = unsafe { ub::dwarf(ctx, lo, hi, &mut out) };
    println!("unwind: first (cold-cache) DWARF unwind: {:?}", t0.elapsed());
    // SAFETY: as above.
    let nf = unsafe { ub::frame_pointers(ctx, lo, hi, &mut out) };
    println!("unwind: depth {DEPTH}: DWARF {nd} frames (root reached: {root}), frame pointers {nf} frames");
    assert!(nd >= DEPTH, "the DWARF unwind found {nd} frames");
    let mut g = c.benchmark_group("capture_per_thread");
    g.bench_function("dwarf", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { ub::dwarf(black_box(ctx), lo, hi, &mut out) })
    });
    g.bench_function("frame_pointers", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { ub::frame_pointers(black_box(ctx), lo, hi, &mut out) })
    });
    g.finish();
    // The ratio, measured side by side in this run.
    let time = |f: &mut dyn FnMut()| {
        let t0 = Instant::now();
        for _ in 0..20_000 {
            f();
        }
        t0.elapsed().as_nanos() as f64 / 20_000.0
    };
    let d = time(&mut || {
        // SAFETY: as above.
        black_box(unsafe { ub::dwarf(black_box(ctx), lo, hi, &mut out) });
    });
    let f = time(&mut || {
        // SAFETY: as above.
        black_box(unsafe { ub::frame_pointers(black_box(ctx), lo, hi, &mut out) });
    });
    println!("unwind: per capture: DWARF {d:.0} ns, frame pointers {f:.0} ns, ratio {:.1}x", d / f);
}

fn unwind(c: &mut Criterion) {
    let (modules, bytes, took) = ub::prepare().expect("prepare");
    println!("unwind: prepared {modules} modules, {} KiB of .eh_frame/.eh_frame_hdr, in {took:?}", bytes / 1024);
    recurse(DEPTH, c);
}

criterion_group!(benches, unwind);
criterion_main!(benches);
