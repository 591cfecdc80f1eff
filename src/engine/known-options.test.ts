import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../core/errors.js';
import { closestKey, refuseUnknownOptions, unknownKeysMessage } from './known-options.js';

const TOPIC = ['partitions', 'retention_ms', 'retention_bytes', 'segment_bytes', 'segment_ms', 'compression'];

describe('closestKey', () => {
  it('finds the key meant by a typo, a swap, another case or another separator style', () => {
    expect(closestKey('partitons', TOPIC)).toBe('partitions');
    expect(closestKey('partitoins', TOPIC)).toBe('partitions');
    expect(closestKey('retentionMs', TOPIC)).toBe('retention_ms');
    expect(closestKey('retention-bytes', TOPIC)).toBe('retention_bytes');
    expect(closestKey('segment_byte', TOPIC)).toBe('segment_bytes');
    expect(closestKey('m', ['M', 'efConstruction'])).toBe('M');
    expect(closestKey('EF_CONSTRUCTION', ['M', 'efConstruction'])).toBe('efConstruction');
  });

  it('suggests nothing for a key that resembles no known one, nor for a short key one edit away', () => {
    expect(closestKey('replicas', TOPIC)).toBeUndefined();
    expect(closestKey('cleanup.policy', TOPIC)).toBeUndefined();
    expect(closestKey('n', ['M'])).toBeUndefined();
    expect(closestKey('', TOPIC)).toBeUndefined();
  });
});

describe('unknownKeysMessage', () => {
  it('names each unknown key (at most three), what it resembles, else the known keys', () => {
    expect(unknownKeysMessage(['partitons'], TOPIC, 'field')).toBe("unknown field 'partitons'; did you mean 'partitions'?");
    expect(unknownKeysMessage(['a', 'partitons', 'b', 'c', 'd'], ['partitions'], 'option')).toBe(
      "unknown options 'a', 'partitons' (did you mean 'partitions'?), 'b' and 2 more; known: partitions",
    );
  });

  it('shows a hostile key cut short and escaped', () => {
    const message = unknownKeysMessage([`x\n${'y'.repeat(500)}`], ['name'], 'field');
    expect(message).not.toContain('\n');
    expect(message.length).toBeLessThan(200);
  });
});

describe('refuseUnknownOptions', () => {
  it('throws invalid_argument for an unknown key, even one set to undefined, and passes known ones', () => {
    expect(() => refuseUnknownOptions({ partitons: 3 }, TOPIC, 'createTopic')).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, message: "createTopic: unknown option 'partitons'; did you mean 'partitions'?" }),
    );
    expect(() => refuseUnknownOptions({ partitons: undefined }, TOPIC, 'createTopic')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(() => refuseUnknownOptions({ partitions: 3, retention_ms: undefined }, TOPIC, 'createTopic')).not.toThrow();
    expect(() => refuseUnknownOptions({}, TOPIC, 'createTopic')).not.toThrow();
  });
});
