/** How the benches print figures, ratios and tables. */

/**
 * `x` with thousands separators and exactly `digits` decimals (en-US).
 *
 * @example
 * grouped(12345.678, 1); // '12,345.7'
 */
export function grouped(x: number, digits = 0): string {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/**
 * How many times `a` is `b`, as the benches print ratios.
 *
 * @example
 * ratio(3, 2); // '1.50×'
 */
export function ratio(a: number, b: number, digits = 2): string {
  return `${(a / b).toFixed(digits)}×`;
}

/** MiB with one decimal, for memory figures. */
export function mib(bytes: number, digits = 1): string {
  return (bytes / 2 ** 20).toFixed(digits);
}

/**
 * A plain-text table: each column as wide as its widest cell, cells right-aligned (figures) but
 * for the columns in `left` (names, notes), columns two spaces apart, and with `rule` a line of
 * dashes under the head. Returns the lines.
 */
export function columns(head: readonly string[], rows: readonly (readonly string[])[], options: { left?: readonly number[]; rule?: boolean } = {}): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (options.left?.includes(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...(options.rule ? [widths.map((w) => '-'.repeat(w)).join('  ')] : []), ...rows.map(line)];
}
