// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-16 (one table step per
// 16 bytes), over three interleaved streams on long inputs that are joined as zlib's
// crc32_combine does (measured +6% over one stream on 256 KB).
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

// Byte k of a word already scaled to a table offset: shift by 8k - 2, mask 0x3fc.
// @ts-ignore: decorator
@inline function b0(w: u32): usize {
  return <usize>((w << 2) & 0x3fc);
}
// @ts-ignore: decorator
@inline function b1(w: u32): usize {
  return <usize>((w >>> 6) & 0x3fc);
}
// @ts-ignore: decorator
@inline function b2(w: u32): usize {
  return <usize>((w >>> 14) & 0x3fc);
}
// @ts-ignore: decorator
@inline function b3(w: u32): usize {
  return <usize>((w >>> 22) & 0x3fc);
}

/**
 * One slicing-by-16 step: the CRC register `c` advanced over the 16 bytes at `p`. Each lookup
 * is a scaled byte with the table's address as the load's constant offset: a shift, a mask and
 * a load, where an address add per lookup stays otherwise (V8 cannot fold a wasm i32.add into
 * the access). Measured +5-7% over computing each address on 16 MB.
 */
// @ts-ignore: decorator
@inline function step16(c: u32, p: usize): u32 {
  const a = load<u32>(p) ^ c;
  const b = load<u32>(p, 4);
  const d = load<u32>(p, 8);
  const e = load<u32>(p, 12);
  return (
    load<u32>(b0(a), TABLES + 15 * 1024) ^
    load<u32>(b1(a), TABLES + 14 * 1024) ^
    load<u32>(b2(a), TABLES + 13 * 1024) ^
    load<u32>(b3(a), TABLES + 12 * 1024) ^
    load<u32>(b0(b), TABLES + 11 * 1024) ^
    load<u32>(b1(b), TABLES + 10 * 1024) ^
    load<u32>(b2(b), TABLES + 9 * 1024) ^
    load<u32>(b3(b), TABLES + 8 * 1024) ^
    load<u32>(b0(d), TABLES + 7 * 1024) ^
    load<u32>(b1(d), TABLES + 6 * 1024) ^
    load<u32>(b2(d), TABLES + 5 * 1024) ^
    load<u32>(b3(d), TABLES + 4 * 1024) ^
    load<u32>(b0(e), TABLES + 3 * 1024) ^
    load<u32>(b1(e), TABLES + 2 * 1024) ^
    load<u32>(b2(e), TABLES + 1024) ^
    load<u32>(b3(e), TABLES)
  );
}

// x^(2^k) mod P for k = 0..31, for shifting a CRC past n zero bytes (zlib's crc32_combine).
const X2N: usize = memory.data(32 * 4, 16);

/** a(x) * b(x) mod P in the reflected representation (bit 31 is x^0). */
function mulModP(a: u32, b: u32): u32 {
  let m: u32 = 1 << 31;
  let p: u32 = 0;
  while (true) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p;
}

function buildX2n(): void {
  let p: u32 = 1 << 30; // x^1
  store<u32>(X2N, p);
  for (let k: usize = 1; k < 32; k++) {
    p = mulModP(p, p);
    store<u32>(X2N + (k << 2), p);
  }
}
buildX2n();

/** x^(8 * bytes) mod P. */
function xPowBytes(bytes: usize): u32 {
  let p: u32 = 1 << 31; // x^0
  let n = bytes;
  let k: usize = 3;
  while (n != 0) {
    if (n & 1) p = mulModP(load<u32>(X2N + ((k & 31) << 2)), p);
    n >>>= 1;
    k++;
  }
  return p;
}

/**
 * Inputs shorter than this are not worth splitting. The combine costs a few hundred ns, so the
 * split already pays from ~1.5 KB (CPU time, this kernel: 1.6 KB 2.4 -> 2.9 GB/s, 6 KB 2.45 ->
 * 3.1, 12 KB 2.6 -> 3.5): segment batches are cut at 16 KB of records, a few KB compressed.
 */
const SPLIT_MIN: usize = 3 * 512;

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
  if (end - p >= SPLIT_MIN) {
    // Three independent streams interleaved hide the table-lookup latency of each; their
    // CRCs are joined afterwards by shifting the earlier ones past the later bytes.
    const n = ((end - p) / 3) & ~15;
    let c1: u32 = ~0;
    let c2: u32 = ~0;
    const stop = p + n;
    while (p < stop) {
      c = step16(c, p);
      c1 = step16(c1, p + n);
      c2 = step16(c2, p + 2 * n);
      p += 16;
    }
    const shift = xPowBytes(n);
    c = ~(mulModP(shift, ~c) ^ ~c1);
    c = ~(mulModP(shift, ~c) ^ ~c2);
    p += 2 * n;
  }
  while (end - p >= 16) {
    c = step16(c, p);
    p += 16;
  }
  while (p < end) {
    c = tab(0, (c ^ load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
  }
  return ~c;
}
