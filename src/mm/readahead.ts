// The page cache of a disk file (ext4 here) as folios, its readahead, and the faults, fault-around
// and reclaim of its mappings: mm/readahead.c, filemap_fault() / filemap_map_pages() of
// mm/filemap.c, finish_fault() of mm/memory.c, madvise_cold_or_pageout_pte_range() of
// mm/madvise.c and shrink_folio_list() of mm/vmscan.c. shmem and memfd keep their page cache as
// the same folio values and share filemap_map_pages() and finish_fault(); their faults, reclaim
// and holes are in filemap.ts.
//
// The cache of a disk file maps page offsets to folio values: FOLIO | order | PG_readahead |
// PG_dirty. Folios are naturally aligned, and a run of the RunMap is a row of whole folios of
// one order with equal flags, so every operation here costs per run, never per page or folio.
//
// Every rule was checked on Linux 6.18.44 (this machine), see scenarios/file-*.yaml.

import { PAGE_SIZE, PMD_SIZE, PROT_EXEC, UFFD_REGISTER_MODES } from '../uapi';
import { DEFAULT_READ_AHEAD_KB } from '../scenario/program';
import { roundDown, type MmStruct } from './mm';
import { RunMap } from './runmap';
import { HUGE_LEAF, isHugeLeaf, PTE_FILE, PTE_MARKER_UFFD_WP, PTE_PRESENT, PTE_UFFD_WP, ptePresent } from './pte';
import { userfaultfdWp, VM_RAND_READ, VM_SEQ_READ, type Vma } from './vma';

/**
 * The default file->f_ra.ra_pages: the machines here have read_ahead_kb = 8192 on the disk of
 * /var/tmp (vda), so 2048 pages (a disk without a driver setting has 128 KiB: 32 pages).
 * `system.read_ahead_kb` sets it per scenario.
 */
export const RA_PAGES = DEFAULT_READ_AHEAD_KB / 4;
/** bdi->io_pages of that disk: max_sectors_kb = 4096, 1024 pages (force_page_cache_ra()). */
const IO_PAGES = 1024;
/** MAX_PAGECACHE_ORDER on x86-64 (HPAGE_PMD_ORDER); ext4 allows it (mapping_max_folio_order()). */
const MAX_PAGECACHE_ORDER = 9;
const HPAGE_PMD_ORDER = 9;
const HPAGE_PMD_NR = 512;
/** MMAP_LOTSAMISS */
const MMAP_LOTSAMISS = 100;
/** fault_around_bytes = 64 KiB. */
const FAULT_AROUND_PAGES = 16;

// ---- folio values ---------------------------------------------------------------------------

/** The page is in the page cache (a folio holds it). */
export const FOLIO = 1;
const ORDER_SHIFT = 2;
const ORDER_MASK = 0xf << ORDER_SHIFT;
/** PG_readahead, which is the same bit as PG_reclaim. */
export const PG_READAHEAD = 1 << 8;
/** PG_dirty */
export const PG_DIRTY = 1 << 9;

export const folioValue = (order: number, flags = 0): number => FOLIO | (order << ORDER_SHIFT) | flags;
export const folioOrder = (value: number): number => (value & ORDER_MASK) >> ORDER_SHIFT;

/** struct file_ra_state, but mmap_miss (AddressSpace.mmapMiss). prev_pos stays -1: no read(). */
export class FileRaState {
  /** file_ra_state_init(): the backing device's ra_pages. */
  constructor(readonly raPages = RA_PAGES) {}
  start = 0;
  size = 0;
  asyncSize = 0;
  order = 0;
}

/** What of struct address_space and struct file the readahead code uses. */
export interface DiskFile {
  /** shmem (tmpfs, memfd): the same folios and fault-around, no readahead, no PG_dirty kept. */
  readonly shmem?: boolean;
  readonly cache: RunMap;
  readonly sizePages: number;
  readonly ra: FileRaState;
  mmapMiss: number;
}

export interface Folio {
  start: number;
  end: number;
  order: number;
  value: number;
}

/** The folio holding page off (filemap_get_folio()), or null. */
export function folioAt(m: DiskFile, off: number): Folio | null {
  const value = m.cache.get(off);
  if (value === undefined || !(value & FOLIO)) return null;
  const order = folioOrder(value);
  const start = off - (off % 2 ** order);
  return { start, end: start + 2 ** order, order, value };
}

/** The first cached page in [lo, hi), or null. */
function firstCached(m: DiskFile, lo: number, hi: number): number | null {
  for (const run of m.cache.runs(lo, hi)) return run.start;
  return null;
}

/** Folios of `order` over [lo, hi) (aligned); the one holding `mark` gets PG_readahead. */
function addFolios(m: DiskFile, lo: number, hi: number, order: number, mark: number): void {
  m.cache.set(lo, hi, folioValue(order));
  if (mark >= lo && mark < hi) {
    const n = 2 ** order;
    const f = mark - (mark % n);
    m.cache.set(f, f + n, folioValue(order, PG_READAHEAD));
  }
}

/** Set or clear flags of one folio. */
export function setFolioFlags(m: DiskFile, f: Folio, set: number, clear = 0): void {
  const value = (f.value | set) & ~clear;
  if (value !== f.value) m.cache.set(f.start, f.end, value);
  f.value = value;
}

/**
 * split_folio() (uniform, to order 0): every page keeps PG_dirty; PG_readahead / PG_reclaim is
 * not copied to the tail pages, the head keeps it.
 */
function splitFolioUniform(m: DiskFile, f: Folio): void {
  if (f.order === 0) return;
  m.cache.set(f.start, f.end, folioValue(0, f.value & PG_DIRTY));
  if (f.value & PG_READAHEAD) m.cache.set(f.start, f.start + 1, folioValue(0, f.value & (PG_DIRTY | PG_READAHEAD)));
}

/**
 * try_folio_split() (folio_split(), non-uniform): the page at `at` becomes a folio of order 0 and
 * the rest of the folio is split buddy-wise into the largest aligned folios around it.
 */
export function splitFolioAt(m: DiskFile, f: Folio, at: number): void {
  let lo = f.start;
  const flags = f.value & PG_DIRTY;
  for (let order = f.order - 1; order >= 0; order--) {
    const half = 2 ** order;
    if (at < lo + half) {
      m.cache.set(lo + half, lo + 2 * half, folioValue(order, flags));
    } else {
      m.cache.set(lo, lo + half, folioValue(order, flags | (lo === f.start ? f.value & PG_READAHEAD : 0)));
      lo += half;
    }
  }
  m.cache.set(lo, lo + 1, folioValue(0, flags | (lo === f.start ? f.value & PG_READAHEAD : 0)));
}

// ---- mm/readahead.c -------------------------------------------------------------------------

const ilog2 = (n: number): number => Math.floor(Math.log2(n));
/** __ffs() */
const ctz = (n: number): number => {
  let c = 0;
  while (n % 2 === 0 && c < 63) {
    n /= 2;
    c++;
  }
  return c;
};
const roundupPowOfTwo = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** get_init_ra_size() */
export function getInitRaSize(size: number, max: number): number {
  const newsize = roundupPowOfTwo(size);
  if (newsize <= max / 32) return newsize * 4;
  if (newsize <= max / 4) return newsize * 2;
  return max;
}

/** get_next_ra_size() */
export function getNextRaSize(cur: number, max: number): number {
  if (cur < max / 16) return 4 * cur;
  if (cur <= max / 2) return 2 * cur;
  return max;
}

/**
 * page_cache_ra_unbounded(): order-0 folios over the pages of [index, index + nr) not cached yet;
 * the page at index + nr - lookahead (if it is one of them) gets PG_readahead.
 */
function pageCacheRaUnbounded(m: DiskFile, index: number, nr: number, lookahead: number): void {
  const mark = lookahead <= nr ? index + nr - lookahead : -1;
  for (const seg of [...m.cache.segments(index, index + nr)]) {
    if (seg.value === undefined) addFolios(m, seg.start, seg.end, 0, mark);
  }
}

/** do_page_cache_ra(): page_cache_ra_unbounded(), never past the end of the file. */
function doPageCacheRa(m: DiskFile, index: number, nr: number, lookahead: number): void {
  if (m.sizePages === 0 || index > m.sizePages - 1) return;
  if (nr > m.sizePages - 1 - index) nr = m.sizePages - index;
  pageCacheRaUnbounded(m, index, nr, lookahead);
}

/**
 * page_cache_ra_order(): read ra->size pages from index in folios of ra->order (capped by
 * MAX_PAGECACHE_ORDER and ilog2(ra->size)), smaller where the index is not aligned and before the
 * end of the file; the folio holding index + size - async_size gets PG_readahead. It stops at the
 * first page already cached (filemap_add_folio() fails) and reads the rest with order-0 folios
 * (do_page_cache_ra(), whose mark is counted from there, after clipping to the end of the file).
 */
export function pageCacheRaOrder(m: DiskFile, index: number): void {
  const ra = m.ra;
  const start = index;
  const limit = Math.min(m.sizePages - 1, index + ra.size - 1);
  const mark = index + ra.size - ra.asyncSize;
  const newOrder = Math.max(0, Math.min(MAX_PAGECACHE_ORDER, ra.order, ilog2(Math.max(1, ra.size))));
  ra.order = newOrder;
  let i = index;
  let err = false;
  while (i <= limit) {
    let order = newOrder;
    // Align with smaller pages if needed; don't allocate pages past EOF.
    if (i % 2 ** order) order = ctz(i);
    while (order > 0 && i + 2 ** order - 1 > limit) order--;
    const n = 2 ** order;
    // A row of folios of the full order at once.
    const count = order === newOrder ? Math.floor((limit + 1 - i) / n) : 1;
    const hi = i + count * n;
    const busy = firstCached(m, i, hi);
    const ok = busy === null ? hi : i + Math.floor((busy - i) / n) * n;
    if (ok > i) addFolios(m, i, ok, order, mark);
    i = ok;
    if (busy !== null) {
      err = true;
      break;
    }
  }
  if (!err) return;
  if (ra.size > i - start) doPageCacheRa(m, i, ra.size - (i - start), ra.asyncSize);
}

/**
 * page_cache_sync_ra() with req_count = ra_pages (MADV_SEQUENTIAL faults). Only index 0 starts a
 * readahead window (prev_pos is never set by faults); elsewhere page_cache_prev_miss() can see at
 * most ra_pages cached pages behind, never more than req_count, so the read is "standalone":
 * ra_pages pages from index, no mark, the window left as it was.
 */
export function pageCacheSyncRa(m: DiskFile, index: number, reqCount: number): void {
  const ra = m.ra;
  const maxPages = m.ra.raPages;
  if (index !== 0 && reqCount <= maxPages) {
    doPageCacheRa(m, index, reqCount, 0);
    return;
  }
  ra.start = index;
  ra.size = getInitRaSize(reqCount, maxPages);
  ra.asyncSize = ra.size > reqCount ? ra.size - reqCount : ra.size >> 1;
  ra.order = 0;
  pageCacheRaOrder(m, ra.start);
}

/** page_cache_next_miss(): the first page of [index, index + max) not cached, else index + max. */
function pageCacheNextMiss(m: DiskFile, index: number, max: number): number {
  let pos = index;
  for (const run of m.cache.runs(index, index + max)) {
    if (run.start > pos) return pos;
    pos = run.end;
  }
  return pos < index + max ? pos : index + max;
}

/**
 * page_cache_async_ra(): a fault met PG_readahead on the folio of page `index`. The mark is
 * cleared; at the expected place the window moves forward (start += size, size ramped up by
 * get_next_ra_size()), elsewhere it restarts after the next hole; the order grows by 2 and the
 * window end is aligned to it, then page_cache_ra_order() reads it.
 */
export function pageCacheAsyncRa(m: DiskFile, folio: Folio, index: number, reqCount: number): void {
  const ra = m.ra;
  setFolioFlags(m, folio, 0, PG_READAHEAD);
  const maxPages = m.ra.raPages;
  const nr = folio.end - folio.start;
  const expected = roundDown(ra.start + ra.size - ra.asyncSize, nr);
  if (index === expected) {
    ra.start += ra.size;
    ra.size = Math.max(ra.size, getNextRaSize(ra.size, maxPages));
    ra.asyncSize = ra.size;
  } else {
    const start = pageCacheNextMiss(m, index + 1, maxPages);
    if (!start || start - index > maxPages) return;
    ra.start = start;
    ra.size = start - index + reqCount;
    ra.size = getNextRaSize(ra.size, maxPages);
    ra.asyncSize = ra.size;
  }
  ra.order += 2;
  const align = 2 ** Math.min(ra.order, ctz(maxPages));
  const end = ra.start + ra.size;
  const alignedEnd = roundDown(end, align);
  if (alignedEnd > ra.start) ra.size -= end - alignedEnd;
  ra.asyncSize = ra.size;
  pageCacheRaOrder(m, ra.start);
}

/**
 * MADV_WILLNEED: force_page_cache_ra() reads at most max(io_pages, ra_pages) pages from
 * the start of the range, as order-0 folios without a mark; the window is not touched.
 */
export function forcePageCacheRa(m: DiskFile, index: number, nr: number): void {
  nr = Math.min(nr, Math.max(IO_PAGES, m.ra.raPages));
  for (let done = 0; done < nr; done += 512) doPageCacheRa(m, index + done, Math.min(512, nr - done), 0);
}

// ---- filemap_fault() ------------------------------------------------------------------------

const pgoff = (vma: Vma, addr: number): number => (addr - vma.fileBase!) / PAGE_SIZE;
const isShared = (vma: Vma): boolean => vma.kind === 'file-shared';

/**
 * do_sync_mmap_readahead() for a page not in the cache. VM_HUGEPAGE first (any other advice
 * aside): two PMD-size folios from the aligned index (one with MADV_RANDOM), the second marked;
 * then MADV_RANDOM (not on exec mappings): nothing; MADV_SEQUENTIAL: page_cache_sync_ra(); then
 * mmap_miss, and exec mappings read forward to the VMA's end, others read around (ra_pages
 * centred on the page, a quarter of it the async part).
 */
export function doSyncMmapReadahead(vma: Vma, off: number): void {
  const m = vma.mapping!;
  const ra = m.ra;
  if (vma.thp === 'hugepage') {
    // ra->start is left as it was: only the readahead_control starts at the aligned index.
    ra.size = HPAGE_PMD_NR * (vma.advice & VM_RAND_READ ? 1 : 2);
    ra.asyncSize = HPAGE_PMD_NR;
    ra.order = HPAGE_PMD_ORDER;
    pageCacheRaOrder(m, off - (off % HPAGE_PMD_NR));
    return;
  }
  const exec = (vma.prot & PROT_EXEC) !== 0;
  if (vma.advice & VM_RAND_READ && !exec) return;
  if (vma.advice & VM_SEQ_READ) {
    pageCacheSyncRa(m, off, m.ra.raPages);
    return;
  }
  if (m.mmapMiss < MMAP_LOTSAMISS * 10) m.mmapMiss++;
  if (m.mmapMiss > MMAP_LOTSAMISS) return;
  if (exec) {
    // exec_folio_order() is 0 on x86; the window ends at the VMA's end, async_size 0.
    const vmaEnd = pgoff(vma, vma.end);
    ra.start = Math.max(off, pgoff(vma, vma.start));
    ra.size = Math.min(ra.start + m.ra.raPages, vmaEnd) - ra.start;
    ra.asyncSize = 0;
  } else {
    ra.start = Math.max(0, off - m.ra.raPages / 2);
    ra.size = m.ra.raPages;
    ra.asyncSize = m.ra.raPages / 4;
  }
  ra.order = 0;
  pageCacheRaOrder(m, ra.start);
}

/**
 * do_async_mmap_readahead() for a page found in the cache (first try of a fault only): nothing
 * with MADV_RANDOM; else mmap_miss goes down, and a folio with PG_readahead starts
 * page_cache_async_ra(). Returns whether it did (the mmap lock was dropped: the fault is retried).
 */
export function doAsyncMmapReadahead(vma: Vma, folio: Folio, off: number): boolean {
  const m = vma.mapping!;
  if (vma.advice & VM_RAND_READ) return false;
  if (m.mmapMiss > 0) m.mmapMiss--;
  if (!(folio.value & PG_READAHEAD)) return false;
  pageCacheAsyncRa(m, folio, off, m.ra.raPages);
  return true;
}

// ---- mapping folios -------------------------------------------------------------------------

/** The addresses of a folio in a VMA of its file. */
const folioVa = (vma: Vma, f: { start: number; end: number }): [number, number] => [
  vma.fileBase! + f.start * PAGE_SIZE,
  vma.fileBase! + f.end * PAGE_SIZE,
];

/** folio_within_vma() and no page-table boundary inside: the folio can be mapped whole. */
function folioMappableWhole(vma: Vma, f: { start: number; end: number }): boolean {
  const [lo, hi] = folioVa(vma, f);
  return lo >= vma.start && hi <= vma.end && roundDown(lo, PMD_SIZE) === roundDown(hi - 1, PMD_SIZE);
}

/**
 * do_set_pmd(): a PMD-size folio mapped by a PMD, unless VM_NOHUGEPAGE, or the 2 MiB block is not
 * wholly in the VMA, or the file offset is not aligned with it (thp_vma_suitable_order()).
 */
function doSetPmd(mm: MmStruct, vma: Vma, addr: number): boolean {
  const block = roundDown(addr, PMD_SIZE);
  if (vma.thp === 'nohugepage') return false;
  if (block < vma.start || block + PMD_SIZE > vma.end || vma.fileBase! % PMD_SIZE !== 0) return false;
  mm.allocPmdTables(block, block + PMD_SIZE);
  mm.pmd.set(block, block + PMD_SIZE, HUGE_LEAF | PTE_FILE);
  return true;
}

/** Map the none slots of [lo, hi) (addresses) to page-cache pages. */
function mapNone(mm: MmStruct, lo: number, hi: number, pte: number): void {
  for (const slot of [...mm.pte.map.segments(mm.pte.index(lo), mm.pte.index(hi))]) {
    if (slot.value === undefined) mm.pte.map.set(slot.start, slot.end, pte);
  }
}

/**
 * do_fault_around() -> filemap_map_pages(): the 64 KiB window around addr (aligned, moved up to
 * start no earlier than the VMA and the 2 MiB block, clipped to the file). next_uptodate_folio()
 * skips folios with PG_readahead. Unless the first folio found reaches the file's last page
 * (can_map_large; always for shmem, which has long mapped PMDs across i_size), a PMD-size one is
 * mapped by a PMD (filemap_map_pmd()) when the PMD is none, and the page table is installed;
 * without it and no page table yet, nothing is mapped. Otherwise each folio's pages in the window
 * are mapped into none slots, a large folio wholly (beyond the window) when can_map_large and it
 * lies inside the VMA and one page table (filemap_map_folio_range()).
 * Every page looked at lowers mmap_miss. Returns whether the page at addr got mapped.
 */
export function filemapMapPages(mm: MmStruct, vma: Vma, addr: number): boolean {
  const m = vma.mapping!;
  const window = FAULT_AROUND_PAGES * PAGE_SIZE;
  const block = roundDown(addr, PMD_SIZE);
  const from = Math.max(roundDown(addr, window), vma.start, block);
  const to = Math.min(from + window, vma.end, block + PMD_SIZE);
  const lo = pgoff(vma, from);
  const hi = Math.min(pgoff(vma, to), m.sizePages);
  const runs = [...m.cache.runs(lo, hi)].filter((r) => r.value & FOLIO && !(r.value & PG_READAHEAD));
  if (runs.length === 0) return false;
  // can_map_large: the first folio found ends before the file's last page (SIGBUS semantics at
  // i_size). Without it there is no PMD mapping, no whole folio, and no page table installed.
  const firstN = 2 ** folioOrder(runs[0].value);
  const canMapLarge = m.shmem === true || runs[0].start - (runs[0].start % firstN) + firstN <= m.sizePages - 1;
  const pmd = mm.pmd.get(addr);
  if (canMapLarge) {
    // filemap_map_pmd()
    if (isHugeLeaf(pmd)) return true;
    if (pmd === undefined && folioOrder(runs[0].value) >= HPAGE_PMD_ORDER && doSetPmd(mm, vma, addr)) return true;
    mm.allocPteTables(from, to);
  } else if (pmd === undefined || isHugeLeaf(pmd)) {
    return false; // pte_offset_map_lock() finds no page table
  }
  let looked = 0;
  for (const run of runs) {
    const n = 2 ** folioOrder(run.value);
    let a = run.start;
    let b = run.end;
    if (n > 1 && canMapLarge) {
      const first = { start: a - (a % n), end: a - (a % n) + n };
      if (first.start < a && folioMappableWhole(vma, first)) a = first.start;
      const last = { start: (b - 1) - ((b - 1) % n), end: (b - 1) - ((b - 1) % n) + n };
      if (last.end > b && folioMappableWhole(vma, last)) b = last.end;
    }
    looked += b - a;
    mapNone(mm, vma.fileBase! + a * PAGE_SIZE, vma.fileBase! + b * PAGE_SIZE, PTE_PRESENT | PTE_FILE);
  }
  m.mmapMiss = Math.max(0, m.mmapMiss - looked);
  return ptePresent(mm.pte.get(addr) ?? 0);
}

/**
 * finish_fault() of a read or shared-write fault on page off: a PMD-size folio over a none PMD is
 * mapped by a PMD (do_set_pmd()); a large folio wholly inside the VMA and one page table, all of
 * whose slots are none, is mapped whole, unless the VMA is userfaultfd-armed; else the page alone.
 */
export function finishFault(mm: MmStruct, vma: Vma, addr: number, folio: Folio, bit: number): void {
  if (mm.pmd.get(addr) === undefined && folio.order >= HPAGE_PMD_ORDER && doSetPmd(mm, vma, addr)) return;
  mm.allocPteTables(addr, addr + PAGE_SIZE);
  let [lo, hi] = [addr, addr + PAGE_SIZE];
  if (folio.order > 0 && vma.uffd === 0 && folioMappableWhole(vma, folio)) {
    const [flo, fhi] = folioVa(vma, folio);
    if (!mm.pte.map.any(mm.pte.index(flo), mm.pte.index(fhi))) [lo, hi] = [flo, fhi];
  }
  mm.pte.set(lo, hi, PTE_PRESENT | PTE_FILE | bit);
}

/** should_fault_around(): not in uffd-wp or minor VMAs. */
const shouldFaultAround = (vma: Vma): boolean => !(vma.uffd & (UFFD_REGISTER_MODES.WP | UFFD_REGISTER_MODES.MINOR));

/**
 * do_read_fault(), do_shared_fault(), do_cow_fault() for a none slot (or a uffd-wp marker, `bit`)
 * of a disk-file VMA. A read tries fault-around first. filemap_fault() then runs the async
 * readahead on a cached page (and the fault is retried if it did), or the sync readahead on a
 * cold one (the read drops the mmap lock: always retried), and the retry tries fault-around
 * again; what is left is finish_fault(). A shared write dirties the folio; a private write
 * copies the page (do_cow_fault()).
 */
export function diskFileFault(mm: MmStruct, vma: Vma, addr: number, write: boolean, bit: number, resolve: () => void): void {
  const m = vma.mapping!;
  const off = pgoff(vma, addr);
  const faultAround = !write && shouldFaultAround(vma);
  if (faultAround && filemapMapPages(mm, vma, addr)) return;
  let folio = folioAt(m, off);
  let retried: boolean;
  if (folio) {
    retried = doAsyncMmapReadahead(vma, folio, off);
  } else {
    doSyncMmapReadahead(vma, off);
    // __filemap_get_folio(FGP_CREAT | FGP_FOR_MMAP): an order-0 folio when readahead left none.
    if (!folioAt(m, off)) m.cache.set(off, off + 1, folioValue(0));
    retried = true;
  }
  if (retried && faultAround && filemapMapPages(mm, vma, addr)) return;
  folio = folioAt(m, off)!;
  if (!write) {
    finishFault(mm, vma, addr, folio, bit);
    return;
  }
  if (bit) resolve();
  if (isShared(vma)) {
    finishFault(mm, vma, addr, folio, 0);
    setFolioFlags(m, folio, PG_DIRTY);
    return;
  }
  mm.anonVmaPrepare(vma); // do_cow_fault()
  mm.allocPteTables(addr, addr + PAGE_SIZE);
  mm.pte.set(addr, addr + PAGE_SIZE, PTE_PRESENT);
}

/** folio_mark_dirty() of the folio of page off (a write through a shared mapping). */
export function markFolioDirty(m: DiskFile, off: number): void {
  const folio = folioAt(m, off);
  if (folio) setFolioFlags(m, folio, PG_DIRTY);
}

// ---- reclaim ----------------------------------------------------------------------------------

/** The VMAs of mm mapping this file (one mmap may have been split into several). */
function vmasOfFile(mm: MmStruct, vma: Vma): Vma[] {
  return mm.vmas.filter((v) => v.mapping === vma.mapping && v.fileBase === vma.fileBase);
}

/**
 * try_to_unmap() of the pages [lo, hi) of the file wherever this mm maps them: PMDs and PTEs of
 * page-cache pages go, leaving a uffd-wp marker for a write-protected page in a uffd-wp VMA.
 */
function unmapPages(mm: MmStruct, vma: Vma, lo: number, hi: number): void {
  for (const v of vmasOfFile(mm, vma)) {
    const start = Math.max(v.start, v.fileBase! + lo * PAGE_SIZE);
    const end = Math.min(v.end, v.fileBase! + hi * PAGE_SIZE);
    if (start >= end) continue;
    for (const b of [...mm.hugeLeavesIn(start, end)]) {
      if (mm.pmd.get(b)! & PTE_FILE) mm.pmd.set(b, b + PMD_SIZE, undefined);
    }
    const keepWp = userfaultfdWp(v);
    mm.pte.map.update(mm.pte.index(start), mm.pte.index(end), (pte) => {
      if (!ptePresent(pte) || !(pte & PTE_FILE)) return pte;
      return keepWp && pte & PTE_UFFD_WP ? PTE_MARKER_UFFD_WP : undefined;
    });
  }
}

/**
 * split_folio() of a mapped file folio: unmap_folio() first, and file pages are not remapped. A
 * dirty folio cannot be split: ext4's dirty buffers cannot be released (filemap_release_folio()),
 * and it stays as it is, mapped.
 */
function splitMapped(mm: MmStruct, vma: Vma, f: Folio): void {
  if (f.value & PG_DIRTY) return;
  unmapPages(mm, vma, f.start, f.end);
  splitFolioUniform(vma.mapping!, f);
}

/**
 * shrink_folio_list() for whole folios [lo, hi) of one value, isolated by MADV_PAGEOUT: unmapped;
 * a clean folio leaves the page cache; a dirty one is not written back from here (only kswapd
 * writes file folios): it gets PG_reclaim, which is PG_readahead, and stays cached.
 */
function reclaimFolios(mm: MmStruct, vma: Vma, lo: number, hi: number, value: number): void {
  unmapPages(mm, vma, lo, hi);
  const m = vma.mapping!;
  m.cache.set(lo, hi, value & PG_DIRTY ? value | PG_READAHEAD : undefined);
}

/**
 * madvise_cold_or_pageout_pte_range() over [start, end) of a disk-file VMA. A PMD-mapped folio the
 * range covers whole is reclaimed (pageout); one covered in part is split. At PTE level a large
 * folio whose pages the range maps all (in a row) is reclaimed whole; one mapped in part is split,
 * which unmaps all of it and reclaims none of it. Small folios mapped in the range are reclaimed.
 */
export function diskColdOrPageout(mm: MmStruct, vma: Vma, start: number, end: number, pageout: boolean): void {
  const m = vma.mapping!;
  for (const block of [...mm.hugeLeavesIn(start, end)]) {
    const pmd = mm.pmd.get(block)!;
    if (!(pmd & PTE_FILE)) continue;
    const f = folioAt(m, pgoff(vma, block));
    if (!f) continue;
    if (block >= start && block + PMD_SIZE <= end) {
      if (pageout) reclaimFolios(mm, vma, f.start, f.end, f.value);
    } else {
      splitMapped(mm, vma, f);
    }
  }
  // The file pages mapped in the range, as rows of present PTEs.
  const rows: [number, number][] = [];
  for (const run of mm.pte.map.runs(mm.pte.index(start), mm.pte.index(end))) {
    if (!ptePresent(run.value) || !(run.value & PTE_FILE)) continue;
    const last = rows[rows.length - 1];
    if (last && last[1] === run.start) last[1] = run.end;
    else rows.push([run.start, run.end]);
  }
  for (const [ps, pe] of rows) {
    const lo = pgoff(vma, ps * PAGE_SIZE);
    const hi = pgoff(vma, pe * PAGE_SIZE);
    for (const run of [...m.cache.runs(lo, hi)]) {
      if (!(run.value & FOLIO)) continue;
      const n = 2 ** folioOrder(run.value);
      // Folios sticking out of the row are mapped in part here: split.
      let a = run.start;
      let b = run.end;
      if (a % n) {
        splitMapped(mm, vma, folioAt(m, a)!);
        a += n - (a % n);
      }
      if (b % n && b > a) {
        splitMapped(mm, vma, folioAt(m, b - 1)!);
        b -= b % n;
      }
      if (pageout && b > a) reclaimFolios(mm, vma, a, b, run.value);
    }
  }
}

/**
 * MADV_REMOVE: punch a hole, truncate_inode_pages_range() (shmem_undo_range() for shmem). A large
 * folio the hole covers in part is unmapped whole; a clean one is split at the hole's edges
 * (truncate_inode_partial_folio() -> try_folio_split_to_order()), then every page of the hole
 * leaves the cache. When the hole ends inside the folio split at its start, the folio then
 * holding the hole's end is split at that page even if it starts there. A dirty one of a disk
 * file cannot be split (its buffers stay): only zeroed, it stays whole and dirty in the cache.
 */
export function diskPunchHole(mm: MmStruct | undefined, vma: Vma, lo: number, hi: number): void {
  const m = vma.mapping!;
  const keep: Folio[] = [];
  let splitAround = false;
  for (const edge of [lo, hi]) {
    const f = folioAt(m, edge);
    if (!f || f.order === 0 || (f.start === edge && !(edge === hi && splitAround))) continue;
    if (mm) unmapPages(mm, vma, f.start, f.end);
    if (f.value & PG_DIRTY) {
      keep.push(f);
      continue;
    }
    splitFolioAt(m, f, edge);
    splitAround = edge === lo && hi < f.end;
  }
  let pos = lo;
  for (const f of keep.sort((a, b) => a.start - b.start)) {
    if (f.start > pos) m.cache.set(pos, Math.min(f.start, hi), undefined);
    pos = Math.max(pos, f.end);
  }
  if (pos < hi) m.cache.set(pos, hi, undefined);
}
