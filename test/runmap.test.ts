// RunMap against a from-scratch model: a plain array of values per key. After every operation
// the runs must describe exactly the model, be sorted, disjoint, and maximal (no two adjacent
// runs with equal values).

import { RunMap } from '../src/mm/runmap';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function checkAgainstModel(map: RunMap, model: (number | undefined)[]): void {
  const runs = map.all();
  for (let i = 0; i < runs.length; i++) {
    expect(runs[i].start).toBeLessThan(runs[i].end);
    if (i > 0) {
      expect(runs[i - 1].end).toBeLessThanOrEqual(runs[i].start);
      if (runs[i - 1].end === runs[i].start) expect(runs[i - 1].value).not.toBe(runs[i].value);
    }
  }
  const fromRuns: (number | undefined)[] = new Array(model.length).fill(undefined);
  for (const r of runs) for (let k = r.start; k < r.end; k++) fromRuns[k] = r.value;
  expect(fromRuns).toEqual(model);
  for (let k = 0; k < model.length; k++) expect(map.get(k)).toBe(model[k]);
}

test.each([1, 2, 3, 4, 5])('random set/update sequences match the model (seed %i)', (seed) => {
  const next = rng(seed);
  const N = 64;
  const map = new RunMap();
  const model: (number | undefined)[] = new Array(N).fill(undefined);
  for (let op = 0; op < 300; op++) {
    const a = Math.floor(next() * N);
    const b = a + Math.floor(next() * (N - a + 1));
    const v = next() < 0.25 ? undefined : Math.floor(next() * 3);
    if (next() < 0.7) {
      map.set(a, b, v);
      for (let k = a; k < b; k++) model[k] = v;
    } else {
      map.update(a, b, (x) => (x === 2 ? undefined : x + 1));
      for (let k = a; k < b; k++) if (model[k] !== undefined) model[k] = model[k] === 2 ? undefined : model[k]! + 1;
    }
    checkAgainstModel(map, model);
  }
});

test('segments cover a range exactly, gaps included', () => {
  const map = new RunMap();
  map.set(2, 5, 1);
  map.set(7, 9, 2);
  expect([...map.segments(0, 10)]).toEqual([
    { start: 0, end: 2, value: undefined },
    { start: 2, end: 5, value: 1 },
    { start: 5, end: 7, value: undefined },
    { start: 7, end: 9, value: 2 },
    { start: 9, end: 10, value: undefined },
  ]);
});

test('a huge range costs one run', () => {
  const map = new RunMap();
  map.set(0, 2 ** 40, 1);
  map.set(5, 6, 2);
  expect(map.runCount).toBe(3);
  map.set(5, 6, 1);
  expect(map.runCount).toBe(1);
});
