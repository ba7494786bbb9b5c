//! The portable reference path. Every other path must match it exactly.

use super::{utf, Kernels};

pub static KERNELS: Kernels = Kernels {
    name: "scalar",
    ascii_prefix,
    ascii_prefix_u16,
    bmp_prefix,
    max_u16,
    widen_u8_i32: widen_u8::<i32>,
    widen_u8_i16: widen_u8::<i16>,
    widen_u8_u16: widen_u8::<u16>,
    widen_u8_u8: widen_u8::<u8>,
    widen_u8_f32: widen_u8::<f32>,
    widen_u8_i64: widen_u8::<i64>,
    widen_u16_i32: widen_u16::<i32>,
    widen_u16_i16: widen_u16::<i16>,
    widen_u16_u16: widen_u16::<u16>,
    widen_u16_u8: widen_u16::<u8>,
    widen_u16_f32: widen_u16::<f32>,
    widen_u16_i64: widen_u16::<i64>,
    fill_i32: fill::<i32>,
    fill_i64: fill::<i64>,
    utf8_scan: utf::utf8_scan_scalar,
    utf16_scan: utf::utf16_scan_scalar,
    utf8_decode: utf::utf8_decode_scalar,
    utf16_decode: utf::utf16_decode_scalar,
};

pub fn ascii_prefix(src: &[u8]) -> usize {
    src.iter().position(|&b| b >= 0x80).unwrap_or(src.len())
}

pub fn ascii_prefix_u16(src: &[u16]) -> usize {
    src.iter().position(|&u| u >= 0x80).unwrap_or(src.len())
}

pub fn bmp_prefix(src: &[u16]) -> usize {
    src.iter()
        .position(|&u| (u & 0xF800) == 0xD800)
        .unwrap_or(src.len())
}

pub fn max_u16(src: &[u16]) -> u16 {
    src.iter().copied().max().unwrap_or(0)
}

pub fn widen_u8<T: super::Elem>(src: &[u8], add: i32, dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_i32(s as i32 + add);
    }
}

pub fn fill<T: Copy>(dst: &mut [T], v: T) {
    dst.fill(v)
}

pub fn widen_u16<T: super::Elem>(src: &[u16], dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_i32(s as i32);
    }
}
