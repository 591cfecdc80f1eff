// quartz.wasm: the core shared by every home. Each feature file exports its own prefixed names.
export { alloc, free } from './memory';
export { crc32c } from './crc32c';
export { xxh32, xxh32Init as xxh32_init, xxh32Stripes as xxh32_stripes, xxh32Digest as xxh32_digest } from './xxhash32';
export { lz4_compress_bound, lz4_compress_block, lz4_compress_block_accel, lz4_decompress_block, lz4_decompress_prefix } from './lz4';
export { lz4f_compress_bound, lz4f_compress, lz4f_decompress, lz4f_output_bound, lz4f_bound_exact, lz4f_error_block, lz4f_error_offset } from './lz4-frame';
export * from './hnsw';
export { json_f32_array, json_f32_count } from './json-f32';
