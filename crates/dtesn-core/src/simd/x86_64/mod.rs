//! The x86_64 paths: one module per instruction set, each implementing the traits of
//! `super::vector` for its register and instantiating `super::generic` inside its own
//! `#[target_feature]` functions; what is genuinely ISA-specific (AVX-512 masked tails, the AVX2
//! and AVX-512 UTF decoders) stays in the module. The `KERNELS` tables come from
//! `super::table`.

pub(super) mod avx2;
pub(super) mod avx512;
pub(super) mod sse2;
