//! Each kernel written once, generic over the traits of `super::vector` (memchr's
//! `arch/generic/`). Everything here is `#[inline(always)]`: the per-ISA modules call it from
//! their `#[target_feature]` functions, and each such instantiation compiles to that ISA.

pub(crate) mod drive;
pub(crate) mod scan;
pub(crate) mod small;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod utf;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod widen;
