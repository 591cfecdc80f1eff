/**
 * The mixed load's client-side work per request, kept small: autocannon runs in the bench
 * process, which shares the machine's two cores with the server, so the client's CPU and its
 * garbage collections (15% of its busy time when each produce body was built with
 * JSON.stringify and each answer read with JSON.parse) sit in every kind's latency.
 */

/**
 * Produce bodies of `count` records whose values are `${batch}#${i}#` padded with dots to
 * `valueBytes`, byte for byte the JSON.stringify of `{records: [{value}, …]}`, written into one
 * template instead of built as objects, a string and its UTF-8 copy per request.
 */
export class ProduceBodies {
  private readonly bytes: Buffer;
  private readonly valueAt: number[] = [];
  private readonly written: number[];

  constructor(
    private readonly count: number,
    private readonly valueBytes: number,
  ) {
    const open = '{"value":"';
    let text = '{"records":[';
    for (let i = 0; i < count; i++) {
      text += (i === 0 ? '' : ',') + open;
      this.valueAt.push(text.length);
      text += '.'.repeat(valueBytes) + '"}';
    }
    this.bytes = Buffer.from(text + ']}', 'latin1');
    this.written = new Array<number>(count).fill(0);
  }

  /**
   * The body for `batch` (ASCII, no JSON escapes). The buffer is reused by the next call:
   * autocannon copies it into the request it builds at once.
   */
  body(batch: string): Buffer {
    for (let i = 0; i < this.count; i++) {
      const at = this.valueAt[i]!;
      const prefix = `${batch}#${i}#`;
      const length = Math.min(prefix.length, this.valueBytes);
      // A longer prefix before (an earlier batch's) is padding again.
      if (this.written[i]! > length) this.bytes.fill(0x2e, at + length, at + this.written[i]!);
      this.bytes.write(prefix, at, length, 'latin1');
      this.written[i] = length;
    }
    return this.bytes;
  }
}

/**
 * Acknowledged offsets, one run per produce answer, kept flat in typed arrays: an array of
 * numbers per answer (100 numbers, 100,000 answers a round) grew the client's old generation.
 */
export class OffsetRuns {
  private flat = new Int32Array(1 << 16);
  private used = 0;
  /** Where each run starts in `flat`, and its end as the next one's start. */
  private readonly starts: number[] = [0];

  get runs(): number {
    return this.starts.length - 1;
  }

  /**
   * Adds the offsets of a produce answer (`{"offsets":[{"partition":0,"offset":12},…]}`), read
   * without JSON.parse. Throws when the answer holds none.
   */
  addAnswer(answer: string): void {
    const key = '"offset":';
    const before = this.used;
    for (let at = answer.indexOf(key); at !== -1; at = answer.indexOf(key, at)) {
      at += key.length;
      let n = 0;
      let digits = 0;
      for (let c = answer.charCodeAt(at); c >= 48 && c <= 57; c = answer.charCodeAt(++at)) {
        n = n * 10 + (c - 48);
        digits++;
      }
      if (digits === 0) throw new Error(`produce answer with an offset that is not a number: ${answer.slice(0, 200)}`);
      this.push(n);
    }
    if (this.used === before) throw new Error(`produce answer without offsets: ${answer.slice(0, 200)}`);
    this.starts.push(this.used);
  }

  /** Run `i`'s offsets (a view: valid until the next addAnswer). */
  run(i: number): Int32Array {
    return this.flat.subarray(this.starts[i]!, this.starts[i + 1]!);
  }

  /** The largest offset of all runs, -1 when there are none. */
  max(): number {
    let m = -1;
    for (let i = 0; i < this.used; i++) if (this.flat[i]! > m) m = this.flat[i]!;
    return m;
  }

  private push(n: number): void {
    if (n > 0x7fffffff) throw new Error(`offset ${n} beyond what this check holds`);
    if (this.used === this.flat.length) {
      const grown = new Int32Array(this.flat.length * 2);
      grown.set(this.flat);
      this.flat = grown;
    }
    this.flat[this.used++] = n;
  }
}
