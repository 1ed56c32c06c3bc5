// hugetlb, one huge page at a time (mm/hugetlb.c, fs/hugetlbfs/inode.c): the pool and its
// reservations, faults (hugetlb_fault(), hugetlb_no_page(), hugetlb_wp()), the zap
// (__unmap_hugepage_range()), change protection (hugetlb_change_protection()), the close of a VMA
// (hugetlb_vm_op_close()) and the hole punch of MADV_REMOVE (hugetlbfs_punch_hole()).
//
// Written from the kernel sources and the spec (§6.3, §9.4, §12.7), not from src/mm.

import { accessError, type FaultResult } from './fault';
import { PMD_SIZE, PUD_SIZE, RefMm, type HugeFile, type HugePool, type Vma } from './mm';
import { userfaultfdWp, userfaultfdWpAsync, type UffdCtx } from './userfaultfd';
import { VM_UFFD_MINOR, VM_UFFD_MISSING } from './mm';

export const poolOf = (size: number): '2M' | '1G' => (size === PUD_SIZE ? '1G' : '2M');
export const hugeSizeOf = (kind: string): number => (kind === 'hugetlb-1g' ? PUD_SIZE : PMD_SIZE);

const pool = (mm: RefMm, file: HugeFile): HugePool => mm.pools[file.pool];

/**
 * hugetlb_reserve_pages() for [from, to) (huge page indices) of a new mapping, then
 * hugetlb_acct_memory(): gather_surplus_pages() cannot grow the pool (no overcommit), so the
 * reservation needs resv_huge_pages + chg <= free_huge_pages. False: ENOMEM.
 */
export function hugetlbReservePages(mm: RefMm, file: HugeFile, shared: boolean, from: number, to: number): boolean {
  let chg = 0;
  // Shared: region_chg() on the inode's map counts the indices not reserved yet. Private: all.
  for (let i = from; i < to; i++) if (!shared || !file.resvMap.has(i)) chg++;
  const p = pool(mm, file);
  const ok = p.resv + chg <= p.total - p.used;
  if (!ok) return false;
  p.resv += chg;
  if (shared) for (let i = from; i < to; i++) file.resvMap.add(i); // region_add()
  return true;
}

/** Whether a fault at index idx has a reservation to consume (vma_has_reserves()). */
function hasReservation(vma: Vma, idx: number): boolean {
  const h = vma.huge!;
  // Shared: a region entry, not consumed by a page yet (a page stays in the cache until the
  // inode goes or a hole punch deletes page and region together). Private: the owner's map
  // records consumed indices.
  if (h.shared) return h.file.resvMap.has(idx) && !h.file.cache.has(idx);
  return !h.file.resvMap.has(idx);
}

/** alloc_hugetlb_folio(): false when the pool has nothing for it (-ENOSPC: SIGBUS). */
function allocHugetlbFolio(mm: RefMm, vma: Vma, idx: number): boolean {
  const h = vma.huge!;
  const p = pool(mm, h.file);
  if (hasReservation(vma, idx)) {
    p.resv--;
  } else if (p.total - p.used - p.resv <= 0) {
    return false; // dequeue_hugetlb_folio_vma(): free_huge_pages - resv_huge_pages == 0
  }
  p.used++;
  // vma_commit_reservation(): shared, region_add(); private, the index is now consumed.
  h.file.resvMap.add(idx);
  return true;
}

function handleUserfault(ctx: UffdCtx | null): FaultResult {
  return ctx?.sigbus ? 'SIGBUS' : 'userfault';
}

/**
 * A user access to addr in a hugetlb VMA (do_user_addr_fault() then hugetlb_fault(), which the
 * CPU retries until the access goes through). Nothing happens when it does not fault.
 */
export function hugetlbAccess(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean): FaultResult {
  if (accessError(vma, write)) return 'SIGSEGV';
  const slot = addr - ((addr - vma.start) % vma.huge!.size);
  const pte = mm.hugeTableExists(vma, slot) ? mm.hugeGet(slot) : undefined;
  if (pte?.kind === 'page' && !write) return 'ok';
  return hugetlbFault(mm, ctx, vma, slot, write);
}

/** hugetlb_fault() for the huge page at slot (retried as the CPU would). */
export function hugetlbFault(mm: RefMm, ctx: UffdCtx | null, vma: Vma, slot: number, write: boolean): FaultResult {
  mm.hugePteAlloc(vma, slot); // huge_pte_alloc()
  const h = vma.huge!;
  let pte = mm.hugeGet(slot);
  if (pte === undefined || pte.kind === 'marker') {
    // hugetlb_no_page()
    const idx = RefMm.hugeIndex(vma, slot);
    const marker = pte?.kind === 'marker';
    if (h.shared && h.file.cache.has(idx)) {
      // filemap_lock_hugetlb_folio() found it: a MINOR registration delivers the fault.
      if (vma.uffd & VM_UFFD_MINOR) return handleUserfault(ctx);
    } else {
      if (vma.uffd & VM_UFFD_MISSING) return handleUserfault(ctx);
      if (!allocHugetlbFolio(mm, vma, idx)) return 'SIGBUS';
      if (h.shared) h.file.cache.add(idx); // hugetlb_add_to_page_cache()
    }
    // make_huge_pte(); "if this pte was previously wr-protected, keep it wr-protected".
    pte = { kind: 'page', wp: marker, file: h.shared };
    mm.hugeSet(vma, slot, pte);
    // A private write fault does the CoW at once (hugetlb_wp()), which refuses a uffd-wp page:
    // the CPU retries the store and hugetlb_fault() sees the present page.
    if (!write) return 'ok';
  }
  if (!write) return 'ok';
  if (pte.wp) {
    if (userfaultfdWp(vma)) {
      if (!userfaultfdWpAsync(vma, ctx)) return handleUserfault(ctx);
      pte.wp = false; // huge_pte_clear_uffd_wp(), then on to the CoW / make writable
      return 'ok';
    }
    // A stale bit in a VMA no longer uffd-wp: hugetlb_wp() returns at once ("never handle CoW
    // for uffd-wp protected pages") and the store faults again, for ever.
    return 'userfault';
  }
  // hugetlb_wp(): shared, make it writable; private, the exclusive anonymous page is reused.
  return 'ok';
}

/**
 * __unmap_hugepage_range() over [start, end) (huge-page aligned) of vma. Without
 * ZAP_FLAG_DROP_MARKER (madvise, hole punch) a uffd-wp page or marker leaves a marker.
 */
export function unmapHugepageRange(mm: RefMm, vma: Vma, start: number, end: number, dropMarker: boolean): void {
  const h = vma.huge!;
  for (let slot = start; slot < end; slot += h.size) {
    if (!mm.hugeTableExists(vma, slot)) continue;
    const pte = mm.hugeGet(slot);
    if (pte === undefined) continue;
    if (pte.kind === 'page' && !h.shared) {
      // The private (anonymous) page is freed. "Restore the reservation for anonymous page,
      // otherwise the backing page could be stolen by someone": with no surplus pages (no
      // overcommit here) and the VMA owning its resv_map (__vma_private_lock()), the folio gets
      // hugetlb_restore_reserve and vma_add_reservation() drops the index from the owner's map
      // (for a private map, "consumed"); free_huge_folio() then gives resv_huge_pages back.
      const p = pool(mm, h.file);
      p.used--;
      p.resv++;
      h.file.resvMap.delete(RefMm.hugeIndex(vma, slot));
    }
    const keep = !dropMarker && (pte.kind === 'marker' || pte.wp);
    mm.hugeSet(vma, slot, keep ? { kind: 'marker' } : undefined);
  }
}

/** The MM_CP_* flags of hugetlb_change_protection() that matter here. */
export interface HugeChangeProtection {
  uffdWp?: boolean;
  uffdWpResolve?: boolean;
}

/** hugetlb_change_protection() over [start, end) of vma (start is taken as it is). */
export function hugetlbChangeProtection(mm: RefMm, vma: Vma, start: number, end: number, cp: HugeChangeProtection): void {
  const size = vma.huge!.size;
  for (let address = start; address < end; address += size) {
    const slot = address - ((address - vma.start) % size);
    if (!mm.hugeTableExists(vma, slot)) {
      if (!cp.uffdWp) continue;
      mm.hugePteAlloc(vma, slot); // "userfaultfd wr-protect requires pgtable pre-allocations"
    }
    const pte = mm.hugeGet(slot);
    if (pte === undefined) {
      if (cp.uffdWp) mm.hugeSet(vma, slot, { kind: 'marker' });
    } else if (pte.kind === 'marker') {
      if (cp.uffdWpResolve) mm.hugeSet(vma, slot, undefined);
    } else if (cp.uffdWp) pte.wp = true;
    else if (cp.uffdWpResolve) pte.wp = false;
  }
}

/**
 * remove_inode_hugepages() of indices [from, to) of a file. A truncation (the inode's eviction,
 * `truncate`) then calls hugetlb_unreserve_pages() over the whole range: region_del() drops every
 * region, and the reservations not consumed by a page (chg - freed) go back. A hole punch
 * ("only when releasing a page is the associated region/reserve map deleted") unreserves each
 * removed page's index alone (chg 1, freed 1: no change to resv_huge_pages); the reservations
 * of indices without a page stay.
 */
function removeFilePages(mm: RefMm, file: HugeFile, from: number, to: number, truncate: boolean): void {
  const p = pool(mm, file);
  for (const idx of [...file.cache]) {
    if (idx < from || idx >= to) continue;
    file.cache.delete(idx);
    file.resvMap.delete(idx);
    p.used--;
  }
  if (!truncate) return;
  for (const idx of [...file.resvMap]) {
    if (idx < from || idx >= to) continue;
    p.resv--; // a region without a page: its reservation was never consumed
    file.resvMap.delete(idx);
  }
}

/**
 * hugetlb_vm_op_close() for a VMA (or the part of one) going away, then fput(): a private
 * mapping gives back the reservations it did not consume; the last user of the file evicts the
 * inode (its pages and reservations go).
 */
export function hugetlbClose(mm: RefMm, vma: Vma): void {
  const h = vma.huge!;
  if (!h.shared) {
    const n = (vma.end - vma.start) / h.size;
    for (let i = h.pgoff; i < h.pgoff + n; i++) if (!h.file.resvMap.has(i)) pool(mm, h.file).resv--;
  }
  if (--h.file.users === 0 && h.shared) removeFilePages(mm, h.file, 0, Infinity, true);
}

/**
 * MADV_REMOVE of [start, end) inside a shared hugetlb VMA: vfs_fallocate(PUNCH_HOLE) ->
 * hugetlbfs_punch_hole(): the partial huge pages at the edges are only zeroed; the whole ones are
 * unmapped from every VMA of the file (hugetlb_vmdelete_list(), zap_flags 0: uffd-wp keeps a
 * marker) and removed from the file.
 */
export function hugetlbPunchHole(mm: RefMm, vma: Vma, start: number, end: number): void {
  const h = vma.huge!;
  const offset = h.pgoff * h.size + (start - vma.start);
  const len = end - start;
  const holeStart = Math.ceil(offset / h.size);
  const holeEnd = Math.floor((offset + len) / h.size);
  if (holeStart >= holeEnd) return;
  for (const v of mm.vmas) {
    if (v.huge?.file !== h.file) continue;
    const n = (v.end - v.start) / h.size;
    const lo = Math.max(holeStart, v.huge.pgoff);
    const hi = Math.min(holeEnd, v.huge.pgoff + n);
    if (lo >= hi) continue;
    unmapHugepageRange(mm, v, v.start + (lo - v.huge.pgoff) * h.size, v.start + (hi - v.huge.pgoff) * h.size, false);
  }
  removeFilePages(mm, h.file, holeStart, holeEnd, false);
}
