import { describe, expect, it } from 'vitest';
import { podsFromJson, slotsFromJson, sortedObject } from './state.js';

describe('the saved tunnel state, read back hostile', () => {
  it('keeps the good entries and leaves out the bad, never trusting the file whole', () => {
    expect([...slotsFromJson({ '198.19.1.10': { slot: 2, drainingSince: 5 }, '198.19.1.11': { slot: 0 }, '198.19.1.12': null, '198.19.1.13': { slot: 1.5 }, '198.19.1.14': { slot: 3 } })]).toEqual([
      ['198.19.1.10', { slot: 2, drainingSince: 5 }],
      ['198.19.1.14', { slot: 3 }],
    ]);
    for (const v of [null, [1, 2], 'x', 7, undefined]) expect(slotsFromJson(v).size).toBe(0);
    expect([...podsFromJson({ '/run/netns/a': '198.19.1.10', '/run/netns/b': 5 })]).toEqual([['/run/netns/a', '198.19.1.10']]);
  });
  it('writes maps sorted, so that equal states write equal files', () => {
    expect(JSON.stringify(sortedObject(new Map([['b', 1], ['a', 2]])))).toBe('{"a":2,"b":1}');
  });
});
