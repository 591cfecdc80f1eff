/**
 * The listening address, taken before the data directory is opened: a port in use, an address that
 * is not this machine's or a host that does not resolve fails before the directory is created,
 * locked or its log replayed, and the port stays taken while the engine opens.
 */
import { createServer, type Server } from 'node:net';

export interface HeldAddress {
  /** The port held: the one asked for, or the one the system chose for port 0. */
  readonly port: number;
  /** Lets the address go, so the real listener can take it at once; later calls do nothing. */
  release(): void;
}

/**
 * Listens on `host:port` with a placeholder that cuts every connection: a client connecting while
 * the server is still opening is accepted and then cut (readiness is `GET /v1/health`).
 * Rejects with the listen error (`syscall` `listen` or `getaddrinfo`), as `server.listen` would.
 *
 * @example
 * const held = await holdAddress('127.0.0.1', 8787);
 * const engine = await openQuartz({ dataDir });
 * held.release();
 * server.listen(held.port, '127.0.0.1');
 */
export async function holdAddress(host: string, port: number): Promise<HeldAddress> {
  const placeholder: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    placeholder.once('error', reject);
    placeholder.listen(port, host, () => {
      placeholder.off('error', reject);
      resolve();
    });
  });
  const held = placeholder.address();
  return {
    port: typeof held === 'object' && held !== null ? held.port : port,
    // The listening socket closes at once; accepted connections were already cut. Idempotent.
    release: () => {
      if (placeholder.listening) placeholder.close();
    },
  };
}
