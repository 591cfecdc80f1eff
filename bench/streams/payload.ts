/** The streams benches' records: JSON events that compress as real ones do. */
const enc = new TextEncoder();

const WORDS = 'order paid shipped cart user session click view search item price total discount coupon region eu us apac mobile web ios android checkout refund stock warehouse carrier express standard gift wrap note review rating'.split(' ');

/**
 * A JSON event of exactly `size` bytes: varied ids, amounts and a note of pseudo-random words,
 * so it compresses about as well as real events do (no padding that LZ4 would erase).
 */
export function payload(i: number, size: number): Uint8Array {
  let seed = (i * 2654435761) >>> 0;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const head = JSON.stringify({ id: i, user: `user-${rand() % 100_003}`, kind: WORDS[rand() % WORDS.length], amount: rand() % 100_000, at: 1_700_000_000_000 + i * 7 });
  let note = '';
  while (head.length + note.length + 12 < size) note += `${WORDS[rand() % WORDS.length]}${rand() % 1000} `;
  const json = `${head.slice(0, -1)},"note":"${note}`.slice(0, size - 2) + '"}';
  return enc.encode(json.padEnd(size, ' ').slice(0, size));
}
