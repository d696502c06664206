//! Throughput of `vpdpbusd`, `vpdpwssd` and `vfmadd` on 512-bit registers: 12 independent
//! chains of each, 50 M rounds, instructions a second (docs/benchmarks.md, issue 27, eighth
//! session). Not part of the workspace: `rustc -O xtask/scripts/instruction_rates.rs -o /tmp/rates && /tmp/rates`.

use std::arch::x86_64::*;
use std::time::Instant;
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
unsafe fn dp(n: usize, seed: i32) -> i32 {
    let w = _mm512_set1_epi32(seed);
    let mut acc = [_mm512_setzero_si512(); 12];
    let a = _mm512_set1_epi32(seed ^ 0x01010101);
    for _ in 0..n {
        for k in 0..12 {
            acc[k] = _mm512_dpbusd_epi32(acc[k], w, a);
        }
    }
    let mut s = _mm512_setzero_si512();
    for k in 0..12 {
        s = _mm512_add_epi32(s, acc[k]);
    }
    _mm512_reduce_add_epi32(s)
}
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
unsafe fn dpw(n: usize, seed: i32) -> i32 {
    let w = _mm512_set1_epi32(seed);
    let mut acc = [_mm512_setzero_si512(); 12];
    let a = _mm512_set1_epi32(seed ^ 0x01010101);
    for _ in 0..n {
        for k in 0..12 {
            acc[k] = _mm512_dpwssd_epi32(acc[k], w, a);
        }
    }
    let mut s = _mm512_setzero_si512();
    for k in 0..12 {
        s = _mm512_add_epi32(s, acc[k]);
    }
    _mm512_reduce_add_epi32(s)
}
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
unsafe fn fm(n: usize, seed: f32) -> f32 {
    let w = _mm512_set1_ps(seed);
    let mut acc = [_mm512_setzero_ps(); 12];
    let a = _mm512_set1_ps(seed * 0.5);
    for _ in 0..n {
        for k in 0..12 {
            acc[k] = _mm512_fmadd_ps(acc[k], w, a);
        }
    }
    let mut s = _mm512_setzero_ps();
    for k in 0..12 {
        s = _mm512_add_ps(s, acc[k]);
    }
    _mm512_reduce_add_ps(s)
}
fn main() {
    assert!(is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("fma"), "needs AVX-512 VNNI and FMA");
    let n = 50_000_000usize;
    for _ in 0..2 {
        let t = Instant::now();
        let r = unsafe { dp(n, 3) };
        let e = t.elapsed().as_secs_f64();
        println!("dpbusd: {:.2} G instr/s ({r})", 12.0 * n as f64 / e / 1e9);
        let t = Instant::now();
        let r = unsafe { dpw(n, 3) };
        let e = t.elapsed().as_secs_f64();
        println!("dpwssd: {:.2} G instr/s ({r})", 12.0 * n as f64 / e / 1e9);
        let t = Instant::now();
        let r = unsafe { fm(n, 0.999) };
        let e = t.elapsed().as_secs_f64();
        println!("fma:    {:.2} G instr/s ({r})", 12.0 * n as f64 / e / 1e9);
    }
}
