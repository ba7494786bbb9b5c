/**
 * In-memory tokenizer.json documents that make HuggingFace tokenizers reproduce dtesn's
 * char-vocab and ByT5 jobs id for id. Nothing is downloaded: the JSON is built here and given to
 * `Tokenizer.fromString` (the Rust `tokenizers` npm binding) or `new Tokenizer(json, config)`
 * (`@huggingface/tokenizers`, the JS tokenizer used by @huggingface/transformers v4).
 *
 * char-vocab (dtesn: `{ encoding: 'codepoint', vocab }`, id = vocab.indexOf(ch) + 2, unknown 1, pad 0):
 *   model BPE with vocab { '[PAD]': 0, '[UNK]': 1, vocab[i]: i + 2 }, no merges, unk_token '[UNK]',
 *   no normalizer, no pre-tokenizer: the whole row is one "word", split into characters (code
 *   points), and with no merges every character is its own token; characters outside the vocab
 *   become '[UNK]' one by one (fuse_unk false). (A Split pre-tokenizer on `[\s\S]` + the same BPE
 *   also reproduces it, but is 2-3x slower in both libraries.)
 *
 * byt5 (dtesn: `{ encoding: 'byt5' }`, id = UTF-8 byte + 3, EOS 1 appended):
 *   pre-tokenizer ByteLevel { use_regex: false, add_prefix_space: false } (maps every UTF-8 byte of
 *   the row to one GPT-2 "byte char"), model BPE over the 256 byte chars with id = byte + 3, plus
 *   '<pad>' 0, '</s>' 1, '<unk>' 2, no merges; post-processor TemplateProcessing "$A </s>".
 *   (The Llama-style alternative, BPE with byte_fallback over '<0xNN>' tokens and an empty
 *   character vocab, is checked too: exact in both libraries, slower in both; see BYT5_VARIANTS.)
 *
 * Truncation/padding: the Rust tokenizer gets `truncation` (LongestFirst, right, max_length = the
 * job's maxLength: specials are kept, as in dtesn) and `padding` (BatchLongest, right, pad id 0) in
 * its tokenizer.json, so `encodeBatch` returns padded rows as a user would configure it.
 * @huggingface/tokenizers has no batch/padding/truncation API (transformers.js does that in its
 * PreTrainedTokenizer wrapper), so the bench truncates (keeping the EOS) and pads itself.
 */

export type Json = Record<string, unknown>;

function bpeModel(vocab: Record<string, number>, unk: string, byteFallback = false): Json {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: unk,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: byteFallback,
    ignore_merges: false,
    vocab,
    merges: [],
  };
}

function addedToken(id: number, content: string): Json {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function truncationPadding(maxLength: number | null, padToken: string): Json {
  if (maxLength == null) return { truncation: null, padding: null };
  return {
    truncation: { direction: 'Right', max_length: maxLength, strategy: 'LongestFirst', stride: 0 },
    padding: {
      strategy: 'BatchLongest',
      direction: 'Right',
      pad_to_multiple_of: null,
      pad_id: 0,
      pad_type_id: 0,
      pad_token: padToken,
    },
  };
}

function doc(parts: Json): Json {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...parts,
  };
}

/** char-vocab tokenizer.json. `maxLength` null: no truncation/padding section (the JS tokenizer ignores it anyway). */
export function charVocabTokenizer(vocab: readonly string[], maxLength: number | null): Json {
  const v: Record<string, number> = { '[PAD]': 0, '[UNK]': 1 };
  vocab.forEach((ch, i) => {
    v[ch] = i + 2;
  });
  return doc({
    ...truncationPadding(maxLength, '[PAD]'),
    added_tokens: [addedToken(0, '[PAD]'), addedToken(1, '[UNK]')],
    model: bpeModel(v, '[UNK]'),
  });
}

/** GPT-2's bytes_to_unicode(): the printable character standing for each byte in ByteLevel. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const m: string[] = new Array(256);
  bs.forEach((b, i) => {
    m[b] = String.fromCodePoint(cs[i]);
  });
  return m;
}

const EOS_TEMPLATE: Json = {
  type: 'TemplateProcessing',
  single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
  pair: [
    { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '</s>', type_id: 0 } },
    { Sequence: { id: 'B', type_id: 0 } },
    { SpecialToken: { id: '</s>', type_id: 0 } },
  ],
  special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
};

const BYT5_SPECIALS = [addedToken(0, '<pad>'), addedToken(1, '</s>'), addedToken(2, '<unk>')];

/** ByT5 via ByteLevel pre-tokenizer + BPE over the 256 byte characters (the one the bench times). */
export function byt5ByteLevelTokenizer(maxLength: number | null): Json {
  const b2u = bytesToUnicode();
  const v: Record<string, number> = { '<pad>': 0, '</s>': 1, '<unk>': 2 };
  for (let b = 0; b < 256; b++) v[b2u[b]] = b + 3;
  return doc({
    ...truncationPadding(maxLength, '<pad>'),
    added_tokens: BYT5_SPECIALS,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: EOS_TEMPLATE,
    model: bpeModel(v, '<unk>'),
  });
}

/** ByT5 via BPE byte_fallback over '<0x00>'..'<0xFF>' (Llama style); verified, not timed. */
export function byt5ByteFallbackTokenizer(maxLength: number | null): Json {
  const v: Record<string, number> = { '<pad>': 0, '</s>': 1, '<unk>': 2 };
  for (let b = 0; b < 256; b++) v[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = b + 3;
  return doc({
    ...truncationPadding(maxLength, '<pad>'),
    added_tokens: BYT5_SPECIALS,
    post_processor: EOS_TEMPLATE,
    model: bpeModel(v, '<unk>', true),
  });
}

export const BYT5_VARIANTS = {
  'ByteLevel+BPE': byt5ByteLevelTokenizer,
  'BPE byte_fallback': byt5ByteFallbackTokenizer,
} as const;
