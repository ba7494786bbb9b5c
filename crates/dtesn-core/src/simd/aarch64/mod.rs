//! The aarch64 path: NEON, part of the baseline of every aarch64 target this module is compiled
//! for.

pub(super) mod neon;
