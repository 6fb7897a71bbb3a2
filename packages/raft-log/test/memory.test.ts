import { describe, expect, it } from 'vitest';
import { createMemoryStorage, LogWriteError, WriterFailedError } from '../src/index.ts';
import { describeStorageContract, entries } from './storage-contract.ts';

describeStorageContract('memory', () => ({
  open: async () => createMemoryStorage(),
  cleanup: async () => undefined,
}));

describe('memory storage faults', () => {
  it('fails writes after fail(): no acknowledgement for anything not durable', async () => {
    const s = createMemoryStorage();
    await s.log.append('a', entries(1, 2, 1));
    const pending = s.log.append('a', entries(3, 3, 1));
    s.fail(new Error('disk full'));
    await expect(pending).rejects.toThrow(LogWriteError);
    await expect(s.log.append('a', entries(4, 4, 1))).rejects.toThrow(WriterFailedError);
    await expect(s.meta.store('a', { currentTerm: 2, votedFor: null })).rejects.toThrow(WriterFailedError);
    expect(s.log.durableIndex('a')).toBe(2);
  });
});
