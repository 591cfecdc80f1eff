// The bodies deferred in one turn are read together, in one check phase (see checkPhase).
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { incomingBody } from './incoming-body.js';

/** A request whose body came whole with its headers. */
const arrived = (text: string) => ({ complete: true, read: () => Buffer.from(text) }) as unknown as IncomingMessage;

describe('incomingBody', () => {
  it('reads the bodies deferred in one turn together, before an immediate queued between them', async () => {
    const order: string[] = [];
    const first = incomingBody(arrived('a')).then((b) => order.push(Buffer.from(b).toString()));
    setImmediate(() => order.push('immediate'));
    const second = incomingBody(arrived('b')).then((b) => order.push(Buffer.from(b).toString()));
    await Promise.all([first, second]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['a', 'b', 'immediate']);
  });

  it('defers a body deferred after the last check phase to the next one', async () => {
    expect(Buffer.from(await incomingBody(arrived('one'))).toString()).toBe('one');
    expect(Buffer.from(await incomingBody(arrived('two'))).toString()).toBe('two');
  });
});
