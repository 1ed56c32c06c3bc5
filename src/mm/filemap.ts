// File-backed memory: the page cache of each file (struct address_space) and the faults of
// file and shmem VMAs (mm/filemap.c, mm/readahead.c, mm/shmem.c, do_fault() in mm/memory.c).

import { PAGE_SIZE, PMD_SIZE, PROT_EXEC } from '../uapi';
import { NotModelled } from '../errors';
import { roundDown, type MmStruct } from './mm';
import { RunMap } from './runmap';
import { PTE_FILE, PTE_MARKER_UFFD_WP, PTE_PRESENT, PTE_SWAP, PTE_UFFD_WP, isUffdWpMarker, ptePresent, pteKind, type Pte } from './pte';
import { userfaultfdWp, VM_RAND_READ, VM_SEQ_READ, type Vma } from './vma';
import { handleUserfault, type UffdCtx } from './userfaultfd';
import { UFFD_REGISTER_MODES } from '../uapi';

/** A page of a file is in the page cache, or (shmem only) swapped out. */
export const CACHED = 1;
export const SWAPPED_OUT = 2;

let nextMappingId = 1;

/** struct address_space: one file (a regular file, a memfd, or the object of a shared-anon mmap). */
export class AddressSpace {
  readonly id = nextMappingId++;
  /** By page offset: CACHED or SWAPPED_OUT; absent pages are holes of the file. */
  readonly cache = new RunMap();
  /** Pages of a disk file written through a shared mapping and not yet written back. */
  readonly dirty = new RunMap();
  /** file->f_ra.mmap_miss: up on cold faults, down on hits; read-around stops past 100. */
  mmapMiss = 0;
  constructor(
    /** shmem (tmpfs, memfd, MAP_SHARED|MAP_ANONYMOUS) rather than a disk file. */
    readonly shmem: boolean,
    readonly sizePages: number,
  ) {}

  isCached(off: number): boolean {
    return this.cache.get(off) === CACHED;
  }

  /** Read [start, end) into the cache (pages already cached stay as they are). */
  readahead(start: number, end: number): void {
    for (const seg of [...this.cache.segments(start, Math.min(end, this.sizePages))]) {
      if (seg.value === undefined) this.cache.set(seg.start, seg.end, CACHED);
    }
  }
}

/** ra_pages of the device behind regular files (read_ahead_kb = 128). */
export const READAHEAD_PAGES = 32;
/** fault_around_bytes = 64 KiB. */
export const FAULT_AROUND_PAGES = 16;
/** MMAP_LOTSAMISS */
const MMAP_LOTSAMISS = 100;

export const isSharedMapping = (vma: Vma): boolean =>
  vma.kind === 'file-shared' || vma.kind === 'memfd-shared' || vma.kind === 'shared-anon';

/** The page offset in its file of the page at addr. */
export const pgoff = (vma: Vma, addr: number): number => (addr - vma.fileBase!) / PAGE_SIZE;

/**
 * A cold page: shmem_fault() allocates it; filemap_fault() reads it with
 * do_sync_mmap_readahead(): nothing more for MADV_RANDOM, forward from the page for
 * MADV_SEQUENTIAL and exec mappings (within the VMA), else read-around, until mmap_miss passes
 * 100. (The asynchronous readahead of later windows and large page-cache folios are not
 * modelled: sequential faults far into a disk file can see a few pages more cached.)
 */
function syncReadahead(vma: Vma, off: number): void {
  const m = vma.mapping!;
  if (m.shmem || vma.advice & VM_RAND_READ) return m.readahead(off, off + 1);
  if (vma.advice & VM_SEQ_READ) return m.readahead(off, off + READAHEAD_PAGES);
  if (vma.prot & PROT_EXEC) return m.readahead(off, Math.min(off + READAHEAD_PAGES, pgoff(vma, vma.end)));
  if (m.mmapMiss < MMAP_LOTSAMISS * 10) m.mmapMiss++;
  if (m.mmapMiss > MMAP_LOTSAMISS) return m.readahead(off, off + 1);
  const start = Math.max(0, off - READAHEAD_PAGES / 2);
  m.readahead(start, start + READAHEAD_PAGES);
}

/** A page found cached by filemap_fault(): do_async_mmap_readahead() lowers mmap_miss. */
function cacheHit(vma: Vma): void {
  const m = vma.mapping!;
  if (m.mmapMiss > 0) m.mmapMiss--;
}

/** should_fault_around(): not in uffd-wp or minor VMAs. */
function shouldFaultAround(vma: Vma): boolean {
  return !(vma.uffd & (UFFD_REGISTER_MODES.WP | UFFD_REGISTER_MODES.MINOR));
}

/**
 * do_fault_around() -> filemap_map_pages(): map the cached pages of a 64 KiB window (aligned, but
 * moved up to start no earlier than the VMA and the 2 MiB block) into none slots; each mapped
 * page lowers mmap_miss. Returns whether the page at addr got mapped.
 */
function doFaultAround(mm: MmStruct, vma: Vma, addr: number): boolean {
  const window = FAULT_AROUND_PAGES * PAGE_SIZE;
  const m = vma.mapping!;
  const block = roundDown(addr, PMD_SIZE);
  const from = Math.max(roundDown(addr, window), vma.start, block);
  const to = Math.min(from + window, vma.end, block + PMD_SIZE, vma.fileBase! + m.sizePages * PAGE_SIZE);
  mm.allocPteTables(from, to);
  let mapped = 0;
  for (const seg of [...m.cache.runs(pgoff(vma, from), pgoff(vma, to))]) {
    if (seg.value !== CACHED) continue;
    const lo = vma.fileBase! + seg.start * PAGE_SIZE;
    const hi = vma.fileBase! + seg.end * PAGE_SIZE;
    for (const slot of [...mm.pte.map.segments(mm.pte.index(lo), mm.pte.index(hi))]) {
      if (slot.value !== undefined) continue;
      mm.pte.map.set(slot.start, slot.end, PTE_PRESENT | PTE_FILE);
      mapped += slot.end - slot.start;
    }
  }
  m.mmapMiss = Math.max(0, m.mmapMiss - mapped);
  return mm.pte.get(addr) !== undefined;
}

/**
 * do_fault() for one page of a file or shmem VMA whose PTE is none or a uffd-wp marker
 * (do_read_fault(), do_cow_fault(), do_shared_fault()), and do_wp_page() for a present one.
 * `resolve` is asked when a write meets a uffd-wp bit (async mode resolves it, else it blocks).
 */
export function doFileFault(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, addr: number, write: boolean, resolve: () => void): void {
  if (!vma.mapping) throw new NotModelled(`faults in ${vma.kind} memory are not modelled yet`);
  const off = pgoff(vma, addr);
  if (off >= vma.mapping.sizePages) throw new NotModelled('a fault beyond the end of the file (SIGBUS) is not modelled yet');
  let pte = mm.pte.get(addr);
  // pte_marker_handle_uffd_wp(): a leftover marker in a VMA no longer uffd-wp is cleared, and
  // the fault retried on the none slot.
  if (pte !== undefined && isUffdWpMarker(pte) && !userfaultfdWp(vma)) {
    mm.pte.set(addr, addr + PAGE_SIZE, undefined);
    pte = undefined;
  }
  if (pte !== undefined && pteKind(pte) === PTE_SWAP) {
    throw new NotModelled('faults on swap entries of a private file mapping are not modelled yet');
  }
  const marker = pte !== undefined && isUffdWpMarker(pte);
  if (pte === undefined || marker) {
    if (vma.uffd & UFFD_REGISTER_MODES.MISSING) {
      mm.allocPteTables(addr, addr + PAGE_SIZE);
      handleUserfault(ctx, 'MISSING');
    }
    const bit = marker ? PTE_UFFD_WP : 0;
    mm.allocPteTables(addr, addr + PAGE_SIZE);
    const faultAround = !write && shouldFaultAround(vma);
    // do_read_fault(): fault-around first; a cold page is read (around) and the fault retried.
    if (faultAround && vma.mapping.isCached(off) && doFaultAround(mm, vma, addr)) return;
    if (!vma.mapping.isCached(off)) {
      syncReadahead(vma, off);
      if (faultAround && doFaultAround(mm, vma, addr)) return;
    } else {
      cacheHit(vma);
    }
    if (!write) {
      mm.pte.set(addr, addr + PAGE_SIZE, PTE_PRESENT | PTE_FILE | bit);
      return;
    }
    if (bit) resolve();
    // do_shared_fault() maps the page cache page; do_cow_fault() a private anonymous copy.
    const shared = isSharedMapping(vma);
    if (shared) vma.mapping.dirty.set(off, off + 1, 1);
    else mm.anonVmaPrepare(vma); // do_cow_fault()
    mm.pte.set(addr, addr + PAGE_SIZE, shared ? PTE_PRESENT | PTE_FILE : PTE_PRESENT);
    return;
  }
  if (!ptePresent(pte)) throw new NotModelled('faults on this kind of entry are not modelled yet');
  if (!write) return;
  let next: Pte = pte;
  if (pte & PTE_UFFD_WP && userfaultfdWp(vma)) {
    resolve();
    next &= ~PTE_UFFD_WP;
  }
  // do_wp_page(): a shared mapping writes to the cached page; a private one copies it.
  if (next & PTE_FILE && !isSharedMapping(vma)) {
    mm.anonVmaPrepare(vma);
    next = PTE_PRESENT;
  }
  if (next & PTE_FILE) vma.mapping.dirty.set(off, off + 1, 1);
  if (next !== pte) mm.pte.set(addr, addr + PAGE_SIZE, next);
}

/** MADV_WILLNEED on a disk file reads the range into the page cache. */
export function fileWillneed(vma: Vma, start: number, end: number): void {
  const m = vma.mapping;
  if (!m || m.shmem) return;
  m.cache.set(pgoff(vma, start), Math.min(pgoff(vma, end), m.sizePages), CACHED);
}

/** MADV_REMOVE (shared mappings): punch a hole in the file, the pages leave the cache. */
export function fileRemove(vma: Vma, start: number, end: number): void {
  vma.mapping!.cache.set(pgoff(vma, start), pgoff(vma, end), undefined);
}

/**
 * try_to_unmap() of file pages by MADV_PAGEOUT: the PTEs of page-cache pages go (leaving a uffd-wp
 * marker where the page was write-protected in a uffd-wp VMA); shmem pages go to swap or stay
 * cached, clean pages of a disk file leave the cache.
 */
export function filePageout(mm: MmStruct, vma: Vma, start: number, end: number, swap: boolean): void {
  const m = vma.mapping!;
  if (!m.shmem && m.dirty.any(pgoff(vma, start), pgoff(vma, end))) {
    throw new NotModelled('MADV_PAGEOUT of dirty pages of a disk file (writeback, large folios) is not modelled yet');
  }
  const keepWp = userfaultfdWp(vma);
  for (const run of [...mm.pte.map.runs(mm.pte.index(start), mm.pte.index(end))]) {
    if (!ptePresent(run.value) || !(run.value & PTE_FILE)) continue;
    const marker = keepWp && run.value & PTE_UFFD_WP ? PTE_MARKER_UFFD_WP : undefined;
    mm.pte.map.set(run.start, run.end, marker);
    const lo = pgoff(vma, run.start * PAGE_SIZE);
    const hi = pgoff(vma, run.end * PAGE_SIZE);
    if (m.shmem) {
      if (swap) m.cache.set(lo, hi, SWAPPED_OUT);
    } else {
      m.cache.set(lo, hi, undefined);
    }
  }
}
