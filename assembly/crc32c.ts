// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8 over load<u64> words.
// Used by the segment format for record and block checksums (iSCSI / RFC 3720 check value
// CRC32C("123456789") = 0xE3069283).

const POLY: u32 = 0x82f63b78;
// 8 tables of 256 u32: table k maps a byte to its CRC after k further zero bytes.
const TABLES: usize = memory.data(8 * 256 * 4, 16);

function buildTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let i: usize = 0; i < 256; i++) {
    let c = load<u32>(TABLES + (i << 2));
    for (let t: usize = 1; t < 8; t++) {
      c = load<u32>(TABLES + ((<usize>(c & 0xff)) << 2)) ^ (c >>> 8);
      store<u32>(TABLES + (t << 10) + (i << 2), c);
    }
  }
}
buildTables();

// @ts-ignore: decorator
@inline function tab(t: usize, idx: u32): u32 {
  return load<u32>(TABLES + (t << 10) + (<usize>idx << 2));
}

/**
 * Running CRC32C over `len` bytes at `ptr`: pass 0 first, then the previous result, so that
 * crc32c(crc32c(0, a), b) == crc32c(0, a || b) (the zlib `crc32` convention).
 */
export function crc32c(crc: u32, ptr: usize, len: usize): u32 {
  let c = ~crc;
  let p = ptr;
  const end = ptr + len;
  // Bring p to 8-byte alignment so the wide loads never straddle cache lines.
  while (p < end && (p & 7) != 0) {
    c = tab(0, (c ^ load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
  }
  while (end - p >= 8) {
    const w = load<u64>(p);
    const lo = <u32>w ^ c;
    const hi = <u32>(w >>> 32);
    c =
      tab(7, lo & 0xff) ^
      tab(6, (lo >>> 8) & 0xff) ^
      tab(5, (lo >>> 16) & 0xff) ^
      tab(4, lo >>> 24) ^
      tab(3, hi & 0xff) ^
      tab(2, (hi >>> 8) & 0xff) ^
      tab(1, (hi >>> 16) & 0xff) ^
      tab(0, hi >>> 24);
    p += 8;
  }
  while (p < end) {
    c = tab(0, (c ^ load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
  }
  return ~c;
}
