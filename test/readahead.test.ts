// The page cache of a disk file as folios (src/mm/readahead.ts): windows, orders, marks. Every
// expected value here was read on Linux 6.18.44 (this machine, ext4, read_ahead_kb = 8192) with a
// probe that maps the file again and reads /proc/kpageflags (folio heads and tails, PG_reclaim =
// PG_readahead) and mincore() after the same accesses; scenarios/file-*.yaml hold the
// PAGEMAP_SCAN-visible part of the same facts.

import { RunMap } from '../src/mm/runmap';
import {
  FileRaState,
  FOLIO,
  folioAt,
  folioOrder,
  getInitRaSize,
  getNextRaSize,
  pageCacheAsyncRa,
  pageCacheRaOrder,
  PG_READAHEAD,
  RA_PAGES,
  type DiskFile,
} from '../src/mm/readahead';

function file(sizePages: number): DiskFile {
  return { cache: new RunMap(), sizePages, ra: new FileRaState(), mmapMiss: 0 };
}

/** The cache as [start, end, order, marked] rows of equal folios. */
function folios(m: DiskFile): [number, number, number, boolean][] {
  return m.cache.all().map((r) => [r.start, r.end, folioOrder(r.value), (r.value & PG_READAHEAD) !== 0]);
}

/** The read-around of do_sync_mmap_readahead() for a cold fault on page off. */
function readAround(m: DiskFile, off: number): void {
  m.ra.start = Math.max(0, off - RA_PAGES / 2);
  m.ra.size = RA_PAGES;
  m.ra.asyncSize = RA_PAGES / 4;
  m.ra.order = 0;
  pageCacheRaOrder(m, m.ra.start);
}

/** A fault on a cached page with PG_readahead (do_async_mmap_readahead()). */
function hitMark(m: DiskFile, off: number): void {
  const f = folioAt(m, off)!;
  expect(f.value & PG_READAHEAD).toBeTruthy();
  pageCacheAsyncRa(m, f, off, RA_PAGES);
}

test('window sizes (get_init_ra_size(), get_next_ra_size())', () => {
  expect(getInitRaSize(2048, 2048)).toBe(2048);
  expect(getInitRaSize(4, 2048)).toBe(16);
  expect(getInitRaSize(100, 2048)).toBe(256);
  expect(getNextRaSize(2048, 2048)).toBe(2048);
  expect(getNextRaSize(64, 2048)).toBe(256);
  expect(getNextRaSize(512, 2048)).toBe(1024);
});

test('read-around: 2048 order-0 pages centred on the fault, the page 512 before the end marked', () => {
  const m = file(4096);
  readAround(m, 3000);
  // mincore(): [1976, 4024); kpageflags: order 0 throughout.
  expect(folios(m)).toEqual([
    [1976, 3512, 0, false],
    [3512, 3513, 0, true],
    [3513, 4024, 0, false],
  ]);
});

test('no mark past the end of the file; the window clipped to it', () => {
  const m = file(1100);
  readAround(m, 20);
  expect(folios(m)).toEqual([[0, 1100, 0, false]]);
});

test('a cached page stops page_cache_ra_order(): the rest is read order-0, marked from there', () => {
  const m = file(1100);
  m.cache.set(5, 6, FOLIO); // MADV_WILLNEED of page 5
  readAround(m, 0);
  // The fallback reads 2043 pages from 5, clipped to 1095: the mark is at 5 + 1095 - 512 = 588.
  expect(folios(m)).toEqual([
    [0, 588, 0, false],
    [588, 589, 0, true],
    [589, 1100, 0, false],
  ]);
});

test('sequential marks: each async window moves forward, its folio order grows by 2', () => {
  const m = file(16384);
  readAround(m, 0);
  hitMark(m, 1536);
  hitMark(m, 2048);
  hitMark(m, 4096);
  // kpageflags after reads of 0, 1536, 2048, 4096: 0-2048 o0, 2048-4096 o2, 4096-6144 o4,
  // 6144-8192 o6; each window's first folio marked until its mark is hit.
  expect(folios(m)).toEqual([
    [0, 2048, 0, false],
    [2048, 4096, 2, false],
    [4096, 6144, 4, false],
    [6144, 6208, 6, true],
    [6208, 8192, 6, false],
  ]);
  expect(m.ra).toMatchObject({ start: 6144, size: 2048, asyncSize: 2048, order: 6 });
});

test('a mark met off its expected index restarts the window after the next hole', () => {
  const m = file(8192);
  readAround(m, 0);
  hitMark(m, 1536);
  hitMark(m, 2048);
  // A fault at 4100, inside the marked order-4 folio [4096, 4112): not the expected index 4096.
  hitMark(m, 4100);
  expect(folios(m).slice(-2)).toEqual([
    [6144, 6208, 6, true],
    [6208, 8192, 6, false],
  ]);
});

test('VM_HUGEPAGE readahead: PMD-size folios, smaller ones before the end of the file', () => {
  const m = file(600);
  m.ra.size = 1024;
  m.ra.asyncSize = 512;
  m.ra.order = 9;
  pageCacheRaOrder(m, 0);
  // A read at 530 maps [512, 576) whole: an order-6 folio. It holds index + size - async_size.
  expect(folios(m)).toEqual([
    [0, 512, 9, false],
    [512, 576, 6, true],
    [576, 592, 4, false],
    [592, 600, 3, false],
  ]);
});
