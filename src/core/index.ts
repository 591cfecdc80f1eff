/**
 * quartzdb/core: the platform-free WASM core and its typed wrappers.
 * Each home's entry re-exports this and registers how it finds the wasm, so `init()` with no
 * argument works everywhere.
 */
export { init, compile, instantiate, codecs, isInitialized, setDefaultSource, setUrlFetcher, type InitInput, type WasmSource, type UrlFetcher, type QuartzExports } from './loader.js';
export { ErrorCode, QuartzError, isQuartzError, errorStatus } from './errors.js';
export { instantiateWasmPack, checkImports, wasmPackGlueFromSource, type WasmPackInput, type WasmPackInstance, type WasmPackGlue } from './wasm-pack.js';
export { encodeBatch, encodeBatchRun, decodeBatch, decodeBatchRun, readBatchHeader, readBatchRun, readTrailer, RecordSpans, SegmentWriter, SegmentReader, type SegmentRecord, type SegmentHeader, type DecodedRecord, type DecodedBatch, type BatchHeader, type BatchRange, type EncodedRun, type EncodeBatchOptions, type DecodeOptions, type SegmentCodec, type SegmentWriterOptions, type AppendBatchOptions, type SegmentTrailer, type OpenTailResult } from './segment.js';
export { lz4, LZ4_MAX_INPUT_SIZE, DEFAULT_MAX_OUTPUT_BYTES, type Lz4BlockSize, type CompressBlockOptions, type CompressBlockInto, type CompressFrameOptions, type DecompressFrameOptions, type DecompressBlockInto } from './lz4.js';
export { xxh32, crc32c } from './hash.js';
export { HnswIndex, HNSW_FILTER_COST_FACTOR, type HnswOptions, type HnswMetric, type HnswSearchOptions, type HnswSearchResult, type HnswSearchPlan } from './hnsw.js';
