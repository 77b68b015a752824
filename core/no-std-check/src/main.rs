//! The `fedcare-core` no_std canary.
//!
//! A freestanding program (no `std`, no Rust runtime): libc's `malloc` behind our own
//! `#[global_allocator]`, our own `#[panic_handler]`, and a C `main`. It trains a logistic
//! regression and an MLP for one epoch, predicts, scores, encodes an update and round-trips a
//! model file, then exits 0 — or 1 with a message if any result is wrong. Linking `std` anywhere
//! below it breaks the build (two panic handlers), which is what CI checks.
#![no_std]
#![no_main]
#![deny(missing_docs, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::panic::PanicInfo;

use fedcare_core::metrics::auroc;
use fedcare_core::rng::init_params;
use fedcare_core::{Codec, CodecConfig, Dataset, ModelFile, ModelSpec, Network, OptimizerConfig, TrainConfig, train};

/// The C library's allocator, used as Rust's global allocator.
struct LibcAllocator;

// SAFETY: `posix_memalign` returns memory aligned to at least `layout.align()` (rounded up to a
// pointer's size, as it requires) and of at least `layout.size()` bytes, or fails with null;
// `free` releases exactly what it returned.
unsafe impl GlobalAlloc for LibcAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align().max(core::mem::size_of::<usize>());
        let mut ptr = core::ptr::null_mut();
        // SAFETY: `align` is a power of two and a multiple of the pointer size; `ptr` is a valid
        // out-parameter.
        let status = unsafe { libc::posix_memalign(&mut ptr, align, layout.size().max(1)) };
        if status == 0 { ptr.cast() } else { core::ptr::null_mut() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above (the GlobalAlloc contract).
        unsafe { libc::free(ptr.cast()) }
    }
}

#[global_allocator]
static ALLOCATOR: LibcAllocator = LibcAllocator;

fn print(text: &str) {
    // SAFETY: the pointer and length describe `text`, valid for the duration of the call.
    unsafe { libc::write(1, text.as_ptr().cast(), text.len()) };
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut message = String::new();
    let _ = writeln!(message, "no_std canary panicked: {info}");
    print(&message);
    // SAFETY: `abort` has no preconditions.
    unsafe { libc::abort() }
}

/// The unwinding routines that the prebuilt `core`/`alloc` (compiled to unwind) still name.
/// With `panic = "abort"` nothing unwinds, so they are never called; they exist so that the
/// program links on stable Rust (the `eh_personality` lang item is unstable) without libgcc.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {
    // SAFETY: `abort` has no preconditions.
    unsafe { libc::abort() }
}

/// See [`rust_eh_personality`].
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() {
    // SAFETY: `abort` has no preconditions.
    unsafe { libc::abort() }
}

/// A small deterministic problem: label = (x0 + x1 - x2 > 0).
fn dataset(rows: usize) -> Dataset {
    let width = 4;
    let mut features = Vec::with_capacity(rows * width);
    let mut labels = Vec::with_capacity(rows);
    let mut state: u32 = 12345;
    for _ in 0..rows {
        let mut row = [0.0f32; 4];
        for value in &mut row {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *value = (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
        }
        labels.push(if row[0] + row[1] - row[2] > 0.0 { 1.0 } else { 0.0 });
        features.extend_from_slice(&row);
    }
    Dataset::new(features, labels, width).expect("generated data is valid")
}

fn check(report: &mut String) -> Result<(), String> {
    let data = dataset(512);
    for spec in [ModelSpec::logistic_regression(4), ModelSpec::mlp(4, &[8, 4])] {
        let spec = spec.map_err(|e| alloc::format!("spec: {e}"))?;
        let mut params = init_params(&spec, 7);
        let config =
            TrainConfig { epochs: 3, batch_size: 32, optimizer: OptimizerConfig::adam(0.05), ..TrainConfig::default() };
        let run = train(&spec, &mut params, &data, &config).map_err(|e| alloc::format!("train: {e}"))?;
        let logits =
            Network::new(&spec).predict(&params, data.features()).map_err(|e| alloc::format!("predict: {e}"))?;
        let area = auroc(&logits, data.labels()).map_err(|e| alloc::format!("auroc: {e}"))?;
        if area <= 0.95 {
            return Err(alloc::format!("AUROC {area} too low for {spec:?}"));
        }
        let codec = Codec::new(CodecConfig::default()).map_err(|e| alloc::format!("codec: {e}"))?;
        let encoded = codec.encode(&params, 0.5).map_err(|e| alloc::format!("encode: {e}"))?;
        let decoded = codec.decode_sum(&encoded.words, 1).map_err(|e| alloc::format!("decode: {e}"))?;
        if decoded.len() != params.len() {
            return Err(String::from("decoded length differs"));
        }
        let file = ModelFile::new(spec.clone(), params, "canary").map_err(|e| alloc::format!("model file: {e}"))?;
        let bytes = file.to_bytes().map_err(|e| alloc::format!("to_bytes: {e}"))?;
        if ModelFile::from_bytes(&bytes).as_ref() != Ok(&file) {
            return Err(String::from("model file did not round-trip"));
        }
        let _ = writeln!(
            report,
            "{} params, {} steps, loss {:.4} -> {:.4}, AUROC {area:.4}",
            spec.param_count(),
            run.steps,
            run.epoch_losses[0],
            run.epoch_losses[run.epoch_losses.len() - 1]
        );
    }
    Ok(())
}

/// The C entry point.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let mut report = String::from("fedcare-core no_std canary\n");
    match check(&mut report) {
        Ok(()) => {
            report.push_str("ok\n");
            print(&report);
            0
        }
        Err(message) => {
            print(&report);
            print(&alloc::format!("FAILED: {message}\n"));
            1
        }
    }
}
