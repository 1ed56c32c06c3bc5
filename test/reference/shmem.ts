// shmem, one page at a time: MAP_SHARED|MAP_ANONYMOUS and memfd mappings (private or shared).
// The faults of a file VMA (do_fault(): do_read_fault() with do_fault_around() and
// filemap_map_pages(), do_shared_fault(), do_cow_fault(); shmem_fault() -> shmem_get_folio_gfp()),
// the zap of a file VMA (zap_pte_range() keeping uffd-wp markers, zap_install_uffd_wp_if_needed()),
// MADV_PAGEOUT (madvise_cold_or_pageout_pte_range(), try_to_unmap_one(), shrink_folio_list(),
// shmem_writeout()) and the hole punch of MADV_REMOVE (shmem_fallocate()).
//
// Written from the kernel sources (mm/memory.c, mm/filemap.c, mm/shmem.c, mm/vmscan.c, mm/rmap.c)
// and the kernel-recorded scenarios (scenarios/shmem-*.yaml, file-private-cow, diff-11), not
// from src/mm. No THP: shmem_enabled is "never" on the machines the expectations come from.

import type { FaultResult } from './fault';
import { PAGE_SIZE, PMD_SIZE, RefMm, VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP, addrEnd, blockOf, type Pte, type Vma } from './mm';
import { userfaultfdWp, type UffdCtx } from './userfaultfd';

/** fault_around_bytes (64 KiB) >> PAGE_SHIFT */
const FAULT_AROUND_PAGES = 16;
const PTRS_PER_PTE = 512;

const handleUserfault = (ctx: UffdCtx | null): FaultResult => (ctx?.sigbus ? 'SIGBUS' : 'userfault');

/**
 * shmem_fault() -> shmem_get_folio_gfp(SGP_CACHE) for page `idx` of the VMA's file: a MINOR
 * registration delivers any fault on an index with a cache entry (a folio or a swap entry), a
 * swap entry is swapped in (shmem_swapin_folio(): the folio is dirty, the swap slot freed), an
 * absent page is allocated (zeroed, up to date, clean) unless a MISSING registration delivers
 * the fault first.
 */
function shmemGetFolio(ctx: UffdCtx | null, vma: Vma, idx: number): FaultResult {
  const cache = vma.shm!.file.cache;
  const entry = cache.get(idx);
  if (entry && vma.uffd & VM_UFFD_MINOR) return handleUserfault(ctx);
  if (entry?.swapped) {
    entry.swapped = false;
    entry.dirty = true;
    return 'ok';
  }
  if (entry) return 'ok';
  if (vma.uffd & VM_UFFD_MISSING) return handleUserfault(ctx);
  cache.set(idx, { dirty: false, swapped: false });
  return 'ok';
}

/** Mark the cache page of a shared VMA's addr dirty (a store through the PTE; the dirty bit reaches the folio at unmap). */
export function shmDirty(vma: Vma, addr: number): void {
  const page = vma.shm!.file.cache.get(RefMm.shmIndex(vma, addr));
  if (page) page.dirty = true;
}

/** should_fault_around(): shmem has ->map_pages; uffd_disable_fault_around() for WP and MINOR. */
const shouldFaultAround = (vma: Vma): boolean => (vma.uffd & (VM_UFFD_WP | VM_UFFD_MINOR)) === 0;

/**
 * do_fault_around() -> filemap_map_pages(): the window of 16 PTEs around the faulting one,
 * starting at the aligned boundary or the VMA's start if that is later, and ending at the end of
 * the PTE table, of the VMA, or of the file; every up-to-date folio of the page cache in it (not
 * a swap entry) is mapped where the PTE is none (a marker, guard or page is skipped). The PTE
 * table is installed once a folio is found.
 */
function faultAround(mm: RefMm, vma: Vma, addr: number): void {
  const file = vma.shm!.file;
  const idx = RefMm.shmIndex(vma, addr);
  const pteOff = (addr / PAGE_SIZE) % PTRS_PER_PTE;
  const vmaOff = (addr - vma.start) / PAGE_SIZE;
  const vmaPages = (vma.end - vma.start) / PAGE_SIZE;
  const fromPte = Math.max(Math.floor(pteOff / FAULT_AROUND_PAGES) * FAULT_AROUND_PAGES, pteOff - Math.min(pteOff, vmaOff));
  const toPte = Math.min(fromPte + FAULT_AROUND_PAGES, PTRS_PER_PTE, pteOff + vmaPages - vmaOff) - 1;
  const startPgoff = idx + fromPte - pteOff;
  const endPgoff = Math.min(idx + toPte - pteOff, file.pages - 1);
  let found = false;
  for (let i = startPgoff; i <= endPgoff; i++) {
    const page = file.cache.get(i);
    if (!page || page.swapped) continue; // next_uptodate_folio(): xa_is_value() is skipped
    if (!found) mm.pteAlloc(addr); // filemap_map_pmd(): pmd_install()
    found = true;
    const a = addr + (i - idx) * PAGE_SIZE;
    if (mm.pteGet(a) === undefined) mm.pteSet(a, { kind: 'file', wp: false }); // filemap_map_order0_folio()
  }
}

/**
 * do_fault() for a none entry of a shmem VMA (do_pte_missing()). `uffdWp`: the fault came from a
 * uffd-wp marker (vmf_orig_pte_uffd_wp()): finish_fault() installs the entry write-protected.
 * `doWpPage` is the write-protect fault the CPU takes when it retries a store.
 */
export function shmDoFault(
  mm: RefMm,
  ctx: UffdCtx | null,
  vma: Vma,
  addr: number,
  write: boolean,
  uffdWp: boolean,
  doWpPage: (pte: Pte) => FaultResult,
): FaultResult {
  const h = vma.shm!;
  const idx = RefMm.shmIndex(vma, addr);
  if (!write) {
    // do_read_fault(): ->map_pages() first, ->fault() if the page was not mapped by it.
    if (shouldFaultAround(vma)) {
      faultAround(mm, vma, addr);
      if (mm.hasPteTable(addr) && mm.pteGet(addr) !== undefined) return 'ok';
    }
    const r = shmemGetFolio(ctx, vma, idx);
    if (r !== 'ok') return r;
    mm.pteAlloc(addr);
    mm.pteSet(addr, { kind: 'file', wp: uffdWp });
    return 'ok';
  }
  if (h.shared) {
    // do_shared_fault(): the page itself, writable and dirty (write-protected with the bit).
    const r = shmemGetFolio(ctx, vma, idx);
    if (r !== 'ok') return r;
    mm.pteAlloc(addr);
    const pte: Pte = { kind: 'file', wp: uffdWp };
    mm.pteSet(addr, pte);
    if (uffdWp) return doWpPage(pte);
    shmDirty(vma, addr);
    return 'ok';
  }
  // do_cow_fault(): vmf_anon_prepare(), the page cache page (allocated if absent), then a copy.
  mm.anonVmaPrepare(vma);
  const r = shmemGetFolio(ctx, vma, idx);
  if (r !== 'ok') return r;
  mm.pteAlloc(addr);
  const pte: Pte = { kind: 'page', wp: uffdWp, writable: !uffdWp, lazyfree: false };
  mm.pteSet(addr, pte);
  if (uffdWp) return doWpPage(pte);
  return 'ok';
}

/** What a zap of a shmem VMA does besides clearing entries. */
export interface ShmZap {
  /** ZAP_FLAG_DROP_MARKER (munmap): every marker goes. */
  dropMarkers: boolean;
  /** details->reclaim_pt (MADV_DONTNEED): free a PTE table left all none. */
  reclaimPt: boolean;
}

/**
 * zap_page_range_single() over [start, end) of a shmem VMA: pages (file or, in a private mapping,
 * anonymous) and swap entries go; unless markers are dropped, existing uffd-wp markers and guard
 * markers stay, and zap_install_uffd_wp_if_needed() leaves a uffd-wp marker where the entry had
 * the uffd-wp bit and the VMA is uffd-wp (vma_is_anonymous() is false for shmem). A kept or
 * installed marker keeps the PTE table ("any_skipped").
 */
export function shmZap(mm: RefMm, vma: Vma, start: number, end: number, z: ShmZap): void {
  for (let addr = start; addr < end; ) {
    const next = addrEnd(addr, end, PMD_SIZE);
    if (mm.hasPteTable(addr)) {
      let canReclaim = z.reclaimPt && next - addr >= PMD_SIZE;
      for (let a = addr; a < next; a += PAGE_SIZE) {
        const pte = mm.pteGet(a);
        if (pte === undefined) continue;
        if ((pte.kind === 'guard' || pte.kind === 'marker') && !z.dropMarkers) {
          canReclaim = false;
          continue;
        }
        const arm = !z.dropMarkers && pte.kind !== 'guard' && pte.kind !== 'marker' && pte.wp && userfaultfdWp(vma);
        mm.pteSet(a, arm ? { kind: 'marker' } : undefined);
        if (arm) canReclaim = false;
      }
      if (canReclaim) mm.freePteTable(blockOf(addr));
    }
    addr = next;
  }
}

/**
 * MADV_PAGEOUT over [start, end) of a shmem VMA. An anonymous (COW) page of a private mapping is
 * swapped out when there is swap, as in anonymous memory. A page-cache page mapped only here is
 * unmapped (try_to_unmap_one(): a uffd-wp marker where the PTE had the bit in a uffd-wp VMA);
 * then shrink_folio_list(): a clean folio (never written) is removed from the page cache; a dirty
 * one is written out (shmem_writeout()): to swap when there is swap (the cache keeps a swap entry),
 * else it is redirtied and stays in the cache.
 */
export function shmPageout(mm: RefMm, vma: Vma, start: number, end: number): void {
  const cache = vma.shm!.file.cache;
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    if (!mm.hasPteTable(addr)) continue;
    const pte = mm.pteGet(addr);
    if (pte?.kind === 'page') {
      if (mm.swap) mm.pteSet(addr, { kind: 'swap', wp: pte.wp });
      continue;
    }
    if (pte?.kind !== 'file') continue;
    mm.pteSet(addr, pte.wp && userfaultfdWp(vma) ? { kind: 'marker' } : undefined);
    const idx = RefMm.shmIndex(vma, addr);
    const page = cache.get(idx);
    if (!page) throw new Error('reference bug: a mapped shmem page not in the page cache');
    if (!page.dirty) cache.delete(idx);
    else if (mm.swap) page.swapped = true;
  }
}

/**
 * MADV_REMOVE of [start, end) in a shared shmem VMA: shmem_fallocate(PUNCH_HOLE) ->
 * unmap_mapping_range() (a zap that keeps markers, even_cows false, no table reclaim), then
 * shmem_truncate_range(): the page-cache pages and swap entries of the range go.
 */
export function shmPunchHole(mm: RefMm, vma: Vma, start: number, end: number): void {
  shmZap(mm, vma, start, end, { dropMarkers: false, reclaimPt: false });
  const cache = vma.shm!.file.cache;
  for (let addr = start; addr < end; addr += PAGE_SIZE) cache.delete(RefMm.shmIndex(vma, addr));
}
