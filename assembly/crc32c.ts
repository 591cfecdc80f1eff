// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-16: one table step per
// 16 bytes keeps the loop-carried dependency short, which is what limits table-driven CRCs.
// Used by the segment format for record and block checksums (iSCSI / RFC 3720 check value
// CRC32C("123456789") = 0xE3069283).

const POLY: u32 = 0x82f63b78;
// 16 tables of 256 u32: table k maps a byte to its CRC after k further zero bytes.
const TABLES: usize = memory.data(16 * 256 * 4, 16);

function buildTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let i: usize = 0; i < 256; i++) {
    let c = load<u32>(TABLES + (i << 2));
    for (let t: usize = 1; t < 16; t++) {
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
  while (end - p >= 16) {
    const a = load<u32>(p) ^ c;
    const b = load<u32>(p, 4);
    const d = load<u32>(p, 8);
    const e = load<u32>(p, 12);
    c =
      tab(15, a & 0xff) ^
      tab(14, (a >>> 8) & 0xff) ^
      tab(13, (a >>> 16) & 0xff) ^
      tab(12, a >>> 24) ^
      tab(11, b & 0xff) ^
      tab(10, (b >>> 8) & 0xff) ^
      tab(9, (b >>> 16) & 0xff) ^
      tab(8, b >>> 24) ^
      tab(7, d & 0xff) ^
      tab(6, (d >>> 8) & 0xff) ^
      tab(5, (d >>> 16) & 0xff) ^
      tab(4, d >>> 24) ^
      tab(3, e & 0xff) ^
      tab(2, (e >>> 8) & 0xff) ^
      tab(1, (e >>> 16) & 0xff) ^
      tab(0, e >>> 24);
    p += 16;
  }
  while (p < end) {
    c = tab(0, (c ^ load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
  }
  return ~c;
}
