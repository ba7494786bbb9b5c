/** Public types of dtesn-pipeline's vectorization API. See docs/SEMANTICS.md for the exact contract. */

export type Encoding = 'codepoint' | 'utf8' | 'utf16' | 'byt5' | 'canine';
export type Padding = 'longest' | 'max-length';
export type Side = 'left' | 'right';
export type Dtype = 'int32' | 'int16' | 'uint16' | 'uint8' | 'float32' | 'int64';
/** Element type of the attention mask. */
export type MaskDtype = 'uint8' | 'int32' | 'int64';
export type InvalidMode = 'replace' | 'error';

/** The typed array that holds ids of each dtype. */
export interface IdsArrayOf {
  int32: Int32Array;
  int16: Int16Array;
  uint16: Uint16Array;
  uint8: Uint8Array;
  float32: Float32Array;
  /** What onnxruntime-node and transformers.js take for `input_ids`. */
  int64: BigInt64Array;
}
export type IdsArray = IdsArrayOf[Dtype];

/** The typed array that holds the attention mask of each maskDtype. */
export interface MaskArrayOf {
  uint8: Uint8Array;
  int32: Int32Array;
  int64: BigInt64Array;
}
export type MaskArray = MaskArrayOf[MaskDtype];

/** Caller-provided output buffers, reused across calls to avoid allocating (and page-faulting) fresh memory. */
export interface OutBuffers<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'> {
  ids?: IdsArrayOf[D];
  attentionMask?: MaskArrayOf[M];
}

/**
 * `D`, `M`: the dtype and maskDtype the options name (a call's result follows them). `M` defaults
 * to 'uint8', the default maskDtype: options that may name another write `VectorizeOptions<D, MaskDtype>`.
 */
export interface VectorizeOptions<D extends Dtype = Dtype, M extends MaskDtype = 'uint8'> {
  /** ['codepoint'] what each id is. */
  encoding?: Encoding;
  /** Character vocabulary (single code points) for 'codepoint' only: vocab[i] -> i + 2, unknown -> 1, padding 0. */
  vocab?: readonly string[];
  /** [512] integer >= 1, counts special tokens. */
  maxLength?: number;
  /** ['longest'] */
  padding?: Padding;
  /** Round the width up to a multiple of this. */
  padToMultipleOf?: number;
  /** ['right'] */
  paddingSide?: Side;
  /** ['right'] 'right' keeps the start of the text. */
  truncationSide?: Side;
  /**
   * [0] an integer that fits the dtype: a number (for 'int64' a safe integer), or for 'int64' also
   * a bigint (any int64).
   */
  padId?: 'int64' extends D ? number | bigint : number;
  /** [true] only byt5 (EOS) and canine (CLS, SEP) have any. */
  addSpecialTokens?: boolean;
  /** ['int32'] */
  dtype?: D;
  /** ['uint8'] the attention mask's element type ('int64': a BigInt64Array, as ONNX models take it). */
  maskDtype?: M;
  /** ['replace'] what a lone surrogate / malformed UTF-8 becomes. */
  invalid?: InvalidMode;
  /** Reused output buffers. */
  out?: OutBuffers<D, M>;
}

export interface VectorBatch<D extends Dtype = 'int32', M extends MaskDtype = 'uint8'> {
  /** Row-major rows x width. */
  ids: IdsArrayOf[D];
  rows: number;
  width: number;
  /** Tokens kept per row, specials included (= the row's attention-mask sum). */
  lengths: Int32Array;
  /** Tokens each row would have without truncation, specials included. */
  sourceLengths: Int32Array;
  /** rows x width, 1 on tokens, 0 on padding (of the call's maskDtype). */
  attentionMask: MaskArrayOf[M];
}

export interface BackendInfo {
  kind: 'native' | 'js';
  /** 'avx512' | 'avx2' | 'sse2' | 'neon' | 'scalar' for native, 'none' for js. */
  simd: string;
  /** The package version. */
  version: string;
}
