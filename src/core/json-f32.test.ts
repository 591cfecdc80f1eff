import { beforeAll, describe, expect, it } from 'vitest';
import { init } from '../node/core.js';
import { scratch, scratchIn } from './codec-scratch.js';
import { codecs, type QuartzExports } from './loader.js';
import { JsonF32ArrayReader, jsonNumberEnd } from './json-f32.js';
import { seededRandom } from './random-testing.js';

const encoder = new TextEncoder();
const f64 = new Float64Array(1);
const f64Bits = new BigUint64Array(f64.buffer);
const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** What the general path gives: JSON.parse, then the f32 the query vector stores. */
const expected = (text: string): number[] => (JSON.parse(text) as number[]).map((x) => Math.fround(x));

/** Reads `[texts]` and checks every value bit for bit (−0 included) against JSON.parse. */
function checkSame(reader: JsonF32ArrayReader, numbers: string[]): void {
  const text = `[${numbers.join(',')}]`;
  const want = expected(text);
  const end = reader.read(encoder.encode(text), 0);
  // Plain checks rather than expect(): this runs a few hundred thousand times.
  if (want.some((x) => !Number.isFinite(x))) {
    if (end !== -1) throw new Error(`${text.slice(0, 200)}: a non-finite f32 is left to the general path, but read to ${end}`);
    return;
  }
  if (end !== text.length || reader.length !== numbers.length) throw new Error(`${text.slice(0, 200)}: read to ${end}, ${reader.length} numbers`);
  for (let i = 0; i < numbers.length; i++) {
    if (!Object.is(reader.values[i], want[i])) throw new Error(`${numbers[i]}: read ${reader.values[i]}, JSON.parse gives ${want[i]}`);
  }
}

/** The exact decimal expansion of N / 2^s (N > 0), e.g. 1/8 → "0.125". */
function exactDecimal(n: bigint, s: number): string {
  if (s <= 0) return (n << BigInt(-s)).toString();
  const digits = (n * 5n ** BigInt(s)).toString().padStart(s + 1, '0');
  return `${digits.slice(0, digits.length - s)}.${digits.slice(digits.length - s)}`.replace(/\.?0+$/, '');
}

/** `text` cut to `keep` significant digits (the exponent form keeps the rest of the value). */
function truncated(text: string, keep: number): string {
  const [int, frac = ''] = text.split('.');
  const all = int! + frac;
  const lead = all.length - all.replace(/^0+/, '').length;
  const kept = all.slice(lead, lead + keep);
  const exponent = int!.length - lead - kept.length;
  return exponent === 0 ? kept : `${kept}e${exponent}`;
}

/** Decimal texts within a few f64 ulps (eighths of one) of the f32 midpoint above `f`. */
function nearMidpoint(f: number): string[] {
  f64[0] = f;
  const raw = f64Bits[0]!;
  const exp = Number((raw >> 52n) & 0x7ffn);
  if (exp === 0) return [];
  const mantissa = (raw & ((1n << 52n) - 1n)) | (1n << 52n);
  // The f32 midpoint above f: f + half an f32 ulp, i.e. bit 28 of the f64 mantissa.
  const mid = mantissa + (1n << 28n);
  const out: string[] = [];
  for (let j = -12; j <= 12; j++) {
    const n = (mid << 3n) + BigInt(j);
    const s = 1075 - exp + 3;
    const text = exactDecimal(n, s);
    out.push(text);
    for (const keep of [16, 17, 18, 19, 20, 25]) out.push(truncated(text, keep));
  }
  return out;
}

beforeAll(async () => {
  await init();
});

describe.each([
  ['in the core', true],
  ['in JS', false],
])('JsonF32ArrayReader %s', (_, useCore) => {
  const reader = new JsonF32ArrayReader(4096, useCore);

  it('reads edge numbers as JSON.parse and Math.fround do', () => {
    checkSame(reader, ['0', '-0', '0.0', '-0.0e5', '0e-999999999', '1', '-1', '1.5', '1E5', '1e+5', '1e-5', '123456789012345678901234567890', '1.00000000000000000000001']);
    // f32 range edges: max, its overflow midpoint, min normal, min subnormal, below half of it.
    checkSame(reader, ['3.4028234663852886e38', '3.4028235677973362e38', '1.1754943508222875e-38', '1.1754942106924411e-38', '1.401298464324817e-45', '7.006492321624085e-46', '7.006492321624087e-46', '7e-46', '1e-50', '4.9e-324']);
    checkSame(reader, ['1e-300', '1e300', '0.000000000000000000000000000000000000000000000000000001', `0.${'0'.repeat(30)}123456789012345678`, `${'9'.repeat(40)}`]);
    // Halfway between two f32s exactly (ties to even), and f32 values widened to f64.
    checkSame(reader, ['1.0000000596046448', '1.00000005960464477539062500', '0.10000000149011612', '16777217', '16777219', '33554434', '-0.12345678901234567']);
    for (const t of ['1e39', '-1e39', '3.4028235677973366e38', '1e400', '-1e400']) checkSame(reader, [t]);
  });

  it('matches JSON.parse on random f32 values written as JSON.stringify writes them', () => {
    const random = seededRandom(1);
    for (let round = 0; round < 1000; round++) {
      const numbers: string[] = [];
      for (let i = 0; i < 1000; i++) {
        f32Bits[0] = (random() * 2 ** 32) >>> 0;
        const x = f32[0]!;
        numbers.push(Number.isFinite(x) ? String(x) : '0.5');
      }
      checkSame(reader, numbers);
    }
  });

  it('matches JSON.parse on random doubles and random decimal texts', () => {
    const random = seededRandom(2);
    const digit = (): string => String(Math.floor(random() * 10));
    for (let round = 0; round < 50_000; round++) {
      // Short arrays, so that the numbers the core reads are not all left to JS with a long one.
      const numbers: string[] = [];
      for (let i = 0; i < 10; i++) {
        if (i % 2 === 0) {
          // A double around the f32 range (2^-160 .. 2^140), any mantissa.
          f64Bits[0] = (BigInt(Math.floor(random() * 300) + 1023 - 160) << 52n) | (BigInt(Math.floor(random() * 2 ** 26)) << 26n) | BigInt(Math.floor(random() * 2 ** 26));
          numbers.push(String(random() < 0.5 ? -f64[0]! : f64[0]!));
        } else {
          const intDigits = Math.floor(random() * 12);
          const fracDigits = Math.floor(random() * 24);
          let text = random() < 0.3 ? '-' : '';
          text += intDigits === 0 ? '0' : String(1 + Math.floor(random() * 9)) + Array.from({ length: intDigits - 1 }, digit).join('');
          if (fracDigits > 0 || intDigits === 0) text += `.${Array.from({ length: Math.max(1, fracDigits) }, digit).join('')}`;
          if (random() < 0.5) text += `${random() < 0.5 ? 'e' : 'E'}${['', '+', '-'][Math.floor(random() * 3)]}${Math.floor(random() * 50)}`;
          numbers.push(text);
        }
      }
      checkSame(reader, numbers);
    }
  });

  it('matches JSON.parse within a few f64 ulps of f32 midpoints (where rounding twice differs)', () => {
    const random = seededRandom(3);
    // One number per array: the core leaves a whole array to JS when one number needs the exact
    // conversion, which would hide its neighbours from the core.
    for (let i = 0; i < 1500; i++) {
      f32Bits[0] = ((random() * 0x7f000000) >>> 0) + 0x00800000;
      for (const text of nearMidpoint(f32[0]!)) checkSame(reader, [text]);
    }
  });

  it('reads only what JSON.parse accepts, and where it accepts reads the same', () => {
    const random = seededRandom(4);
    const pieces = ['0', '1', '9', '-', '+', '.', 'e', 'E', ',', '[', ']', ' ', '\t', '\n', '\r', '\u00a0', 'x', '"', '00', '1.', '.5', ''];
    const base = '[0.5,-1.25e-3, 17, 0.10000000149011612 ,3E2]';
    for (let i = 0; i < 200_000; i++) {
      let text = base;
      for (let edits = 1 + Math.floor(random() * 3); edits > 0; edits--) {
        const at = Math.floor(random() * (text.length + 1));
        const cut = random() < 0.5 ? Math.floor(random() * 3) : 0;
        text = text.slice(0, at) + pieces[Math.floor(random() * pieces.length)]! + text.slice(at + cut);
      }
      const bytes = encoder.encode(text);
      const end = reader.read(bytes, 0);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (end === -1) continue;
      // The reader stops after `]`: what it read must be a JSON array on its own, with the same values.
      const want = expected(text.slice(0, end));
      expect(Array.from(reader.values.subarray(0, reader.length)), text).toEqual(want);
      if (end === text.length) expect(parsed, text).toBeDefined();
    }
  });

  it('leaves empty, over-long and non-array input to the general path', () => {
    expect(reader.read(encoder.encode('[]'), 0)).toBe(-1);
    expect(reader.read(encoder.encode('[ ]'), 0)).toBe(-1);
    expect(reader.read(encoder.encode('{"a":1}'), 0)).toBe(-1);
    expect(reader.read(encoder.encode('[1,2'), 0)).toBe(-1);
    const small = new JsonF32ArrayReader(3, useCore);
    expect(small.read(encoder.encode('[1,2,3]'), 0)).toBe(7);
    expect(small.read(encoder.encode('[1,2,3,4]'), 0)).toBe(-1);
    // Past the core's input limit the JS reader reads it, with the same values.
    checkSame(reader, ['0.5', `${' '.repeat(1 << 20)}-0.25`]);
    // Growing past the first buffer keeps the earlier values.
    const many = Array.from({ length: 1000 }, (_, i) => String(i / 7));
    checkSame(new JsonF32ArrayReader(4096, useCore), many);
  });
});

describe('the core reader', () => {
  it('settles the usual arrays itself (JS reads only what it leaves)', () => {
    const wasm = codecs<QuartzExports & { json_f32_array(...args: number[]): number; json_f32_count(): number }>();
    const random = seededRandom(5);
    for (let round = 0; round < 100; round++) {
      const values = Array.from({ length: 128 }, () => (round % 2 === 0 ? Math.fround(random() * 2 - 1) : Math.round((random() * 2 - 1) * 1e4) / 1e4));
      const bytes = encoder.encode(JSON.stringify(values));
      const src = scratchIn(wasm, 0, bytes);
      const out = scratch(wasm, 1, 4096);
      expect(wasm.json_f32_array(src, bytes.length, 0, out, 1024)).toBe(bytes.length);
      expect(wasm.json_f32_count()).toBe(128);
      expect(Array.from(new Float32Array(wasm.memory.buffer, out, 128))).toEqual(expected(JSON.stringify(values)));
    }
  });
});

describe('jsonNumberEnd', () => {
  it('finds the end of JSON numbers and refuses what is not one', () => {
    const at = (text: string): number => jsonNumberEnd(encoder.encode(text), 0);
    expect(at('-0.5e+3,')).toBe(7);
    expect(at('12}')).toBe(2);
    expect(at('0')).toBe(1);
    expect(at('01')).toBe(1);
    for (const bad of ['', '-', '+1', '.5', '1.', '1e', '1e+', '-x', 'NaN']) expect(at(bad), bad).toBe(-1);
  });
});
