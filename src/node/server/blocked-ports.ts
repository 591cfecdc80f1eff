/**
 * The ports the fetch standard blocks (https://fetch.spec.whatwg.org/#port-blocking, "bad port"):
 * browsers and node's fetch refuse to connect to them, before any packet, since other protocols
 * (SSH, SMTP, X11, IRC, …) listen there. A server on one cannot be reached by the quartz CLI, the
 * /docs page or a browser app, though curl reaches it.
 */
const BLOCKED = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161,
  179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
  5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/**
 * @example
 * isFetchBlockedPort(6000); // true
 * isFetchBlockedPort(8787); // false
 */
export function isFetchBlockedPort(port: number): boolean {
  return BLOCKED.has(port);
}

/** Every blocked port, ascending: for tests that hold the list to node's fetch. */
export function fetchBlockedPorts(): number[] {
  return [...BLOCKED].sort((a, b) => a - b);
}
