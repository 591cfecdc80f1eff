/** Small stream helpers for the CLI. */

/**
 * Reads a stream to its end.
 *
 * @example
 * const bytes = await readAll(process.stdin);
 */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}
