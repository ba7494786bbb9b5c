//! Character vocabularies (Keras TextVectorization ids: 0 padding, 1 out-of-vocabulary, `vocab[i]` -> `i + 2`).

use std::collections::HashMap;

use crate::Error;

/// Id of a code point that is not in the vocabulary.
pub const OOV: i32 = 1;

/// A compiled vocabulary: a dense table for the BMP (one load per character on the hot path) and
/// a two-level one for astral code points (a page index by `cp >> 8`, then 256-entry pages; pages
/// without a vocabulary character share one all-OOV page): two loads, no hash probe. Building one
/// costs about 256 KiB of writes, so bindings cache it.
pub struct Vocab {
    /// Fixed size, so indexing with a u16 needs no bounds check on the hot path.
    bmp: Box<[i32; 0x10000]>,
    /// Page of each 256 astral code points (`(cp >> 8) - 0x100`); page 0 is all OOV.
    astral_index: Box<[u16; ASTRAL_PAGES]>,
    astral_pages: Vec<[i32; 256]>,
    codepoints: Vec<u32>,
}

/// 256-code-point pages from U+10000 to U+10FFFF.
const ASTRAL_PAGES: usize = 0x1000;

impl Vocab {
    /// Compiles `codepoints` (vocab[i] gets id i + 2). Surrogates, values above U+10FFFF and
    /// repeats are refused, naming the index.
    pub fn new(codepoints: &[u32]) -> Result<Vocab, Error> {
        let mut bmp: Box<[i32; 0x10000]> = vec![OOV; 0x10000]
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| unreachable!("the vector has 0x10000 entries"));
        let mut astral_index: Box<[u16; ASTRAL_PAGES]> = vec![0u16; ASTRAL_PAGES]
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| unreachable!("the vector has ASTRAL_PAGES entries"));
        let mut astral_pages = vec![[OOV; 256]];
        let mut first: HashMap<u32, usize> = HashMap::with_capacity(codepoints.len());
        for (i, &cp) in codepoints.iter().enumerate() {
            if cp > 0x10FFFF || (0xD800..=0xDFFF).contains(&cp) {
                return Err(Error::VocabNotScalar {
                    index: i,
                    value: cp,
                });
            }
            if let Some(&j) = first.get(&cp) {
                return Err(Error::VocabRepeat {
                    index: i,
                    first: j,
                    value: cp,
                });
            }
            first.insert(cp, i);
            let id = i32::try_from(i + 2).map_err(|_| Error::VocabNotScalar {
                index: i,
                value: cp,
            })?;
            if cp < 0x10000 {
                bmp[cp as usize] = id;
            } else {
                let slot = &mut astral_index[(cp >> 8) as usize - 0x100];
                if *slot == 0 {
                    // At most 0x1000 pages (u16), and a vocabulary this large is refused by
                    // memory long before.
                    *slot = astral_pages.len() as u16;
                    astral_pages.push([OOV; 256]);
                }
                astral_pages[*slot as usize][(cp & 0xFF) as usize] = id;
            }
        }
        Ok(Vocab {
            bmp,
            astral_index,
            astral_pages,
            codepoints: codepoints.to_vec(),
        })
    }

    /// The code points it was built from (bindings compare them to reuse a cached table).
    pub fn codepoints(&self) -> &[u32] {
        &self.codepoints
    }

    /// Largest id it can produce (1 for an empty vocabulary).
    pub fn max_id(&self) -> u32 {
        (self.codepoints.len() as u32 + 1).max(OOV as u32)
    }

    /// The id of a BMP code point (or any UTF-16 unit): one load.
    #[inline(always)]
    pub fn id16(&self, unit: u16) -> i32 {
        self.bmp[unit as usize]
    }

    #[inline(always)]
    pub fn id(&self, cp: u32) -> i32 {
        if cp < 0x10000 {
            self.bmp[cp as usize]
        } else {
            match self.astral_index.get((cp >> 8) as usize - 0x100) {
                Some(&page) => self.astral_pages[page as usize][(cp & 0xFF) as usize],
                None => OOV,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_keras() {
        let v = Vocab::new(&['a' as u32, 'b' as u32, 0x1F600]).unwrap();
        assert_eq!(v.id('a' as u32), 2);
        assert_eq!(v.id('b' as u32), 3);
        assert_eq!(v.id(0x1F600), 4);
        assert_eq!(v.id('c' as u32), 1);
        assert_eq!(v.id(0x1F601), 1);
        // Another page, its neighbours, and the ends of the astral range.
        let w = Vocab::new(&[0x10000, 0x1F600, 0x1F6FF, 0x10FFFF]).unwrap();
        assert_eq!(
            [0x10000, 0x10001, 0x1F5FF, 0x1F600, 0x1F6FF, 0x1F700, 0x10FFFE, 0x10FFFF, 0x110000]
                .map(|c| w.id(c)),
            [2, 1, 1, 3, 4, 1, 1, 5, 1]
        );
        assert_eq!(v.max_id(), 4);
    }

    #[test]
    fn refuses_repeats_and_surrogates() {
        assert_eq!(
            Vocab::new(&[97, 98, 97]).err(),
            Some(Error::VocabRepeat {
                index: 2,
                first: 0,
                value: 97
            })
        );
        assert_eq!(
            Vocab::new(&[0xD800]).err(),
            Some(Error::VocabNotScalar {
                index: 0,
                value: 0xD800
            })
        );
        assert_eq!(
            Vocab::new(&[0x110000]).err(),
            Some(Error::VocabNotScalar {
                index: 0,
                value: 0x110000
            })
        );
    }
}
