// Page faults of private anonymous memory (and the entry to those of shmem, shmem.ts), one page at a time (arch/x86/mm/fault.c,
// mm/memory.c: handle_mm_fault() -> handle_pte_fault() -> do_anonymous_page() / do_wp_page() /
// handle_pte_marker()).

import { PAGE_SIZE, PMD_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, VM_UFFD_MISSING, blockOf, type Pte, type RefMm, type Vma } from './mm';
import { hugetlbAccess } from './hugetlb';
import { shmDirty, shmDoFault } from './shmem';
import { userfaultfdWp, userfaultfdWpAsync, type UffdCtx } from './userfaultfd';

/**
 * What a fault ends in: 'ok', a signal, or 'userfault' when handle_userfault() would queue the
 * fault for a userfaultfd reader and sleep (the harness has no reader: the step hangs).
 */
export type FaultResult = 'ok' | 'SIGSEGV' | 'SIGBUS' | 'userfault';

/** access_error() of arch/x86/mm/fault.c. */
export function accessError(vma: Vma, write: boolean): boolean {
  if (write) return (vma.prot & PROT_WRITE) === 0;
  // vma_is_accessible(): any of VM_READ | VM_WRITE | VM_EXEC (x86 cannot make a page
  // unreadable without protection keys, which this machine does not have)
  return (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) === 0;
}

/** handle_userfault(): with UFFD_FEATURE_SIGBUS the fault is a SIGBUS instead of a wait. */
function handleUserfault(ctx: UffdCtx | null): FaultResult {
  return ctx?.sigbus ? 'SIGBUS' : 'userfault';
}

/**
 * A user load or store of one byte in page `addr` (do_user_addr_fault()). Nothing happens when
 * the access does not fault: a read of a present page, a write through a writable PTE.
 */
export function userAccess(mm: RefMm, ctx: UffdCtx | null, addr: number, write: boolean): FaultResult {
  const vma = mm.vmaLookup(addr);
  if (!vma) return 'SIGSEGV'; // bad_area(): no VMA here
  if (vma.huge) return hugetlbAccess(mm, ctx, vma, addr, write);
  // A PROT_NONE VMA has PROT_NONE PTEs and a read-only VMA read-only ones, so every access that
  // access_error() refuses faults and is refused.
  if (accessError(vma, write)) return 'SIGSEGV';
  const thp = mm.thpGet(addr);
  if (thp && (!write || (thp.writable && !thp.zero))) {
    if (write) thpStore(mm, addr);
    return 'ok';
  }
  const pte = mm.hasPteTable(addr) ? mm.pteGet(addr) : undefined;
  if (pte?.kind === 'page' && (!write || pte.writable)) {
    if (write && pte.lazyfree) {
      pte.lazyfree = false; // the CPU sets the dirty bit
      pte.redirtied = true;
    }
    if (write && pte.folio !== undefined && !mm.noStore) pte.data = true;
    // (A stale uffd-wp bit on a writable PTE, see doWpPage(), stays: no fault, no resolution.)
    return 'ok';
  }
  if (pte?.kind === 'zero' && !write) return 'ok';
  if (pte?.kind === 'file' && noFaultOnFile(vma, pte, write)) {
    if (write) shmDirty(vma, addr);
    return 'ok';
  }
  return handleMmFault(mm, ctx, vma, addr, write);
}

/**
 * Whether an access to a present shmem page goes through without a fault: a read always; a store
 * only in a shared mapping, through a PTE without the uffd-wp bit (the page becomes dirty).
 * (A shared PTE can also be read-only without the bit, e.g. mapped by a read in a uffd-wp VMA:
 * wp_page_shared() makes it writable, which nothing here can see.)
 */
export function noFaultOnFile(vma: Vma, pte: Pte & { kind: 'file' }, write: boolean): boolean {
  if (!write || pte.writable) return true;
  if (!vma.shm!.shared || pte.wp) return false;
  return true;
}

/** A store through a writable PMD: the byte lands in its subpage; the PMD becomes dirty. */
function thpStore(mm: RefMm, addr: number): void {
  const thp = mm.thpGet(addr)!;
  if (!mm.noStore) thp.data.add(Math.floor((addr % PMD_SIZE) / PAGE_SIZE));
  if (thp.lazyfree) {
    thp.lazyfree = false;
    thp.redirtied = true;
  }
}

/** handle_mm_fault() -> __handle_mm_fault(): the tables above the PTE level come first. */
export function handleMmFault(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean): FaultResult {
  mm.pmdAlloc(addr); // p4d_alloc(), pud_alloc(), pmd_alloc()
  const thp = mm.thpGet(addr);
  // pmd_none() && thp_vma_allowable_order(): create_huge_pmd()
  if (!thp && !mm.hasPteTable(addr) && mm.thpAllowed(vma, addr)) return doHugePmdAnonymousPage(mm, ctx, vma, addr, write);
  if (thp) {
    if (!write || (thp.writable && !thp.zero)) {
      if (write) thpStore(mm, addr);
      return 'ok';
    }
    const r = wpHugePmd(mm, ctx, vma, addr);
    if (r !== 'fallback') return r;
  }
  return handlePteFault(mm, ctx, vma, addr, write);
}

/**
 * do_huge_pmd_anonymous_page(): vmf_anon_prepare() first (reads too); a read maps the huge zero
 * page (use_zero_page = 1), a write a new THP; a MISSING registration delivers the fault instead.
 */
function doHugePmdAnonymousPage(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean): FaultResult {
  mm.anonVmaPrepare(vma);
  if (vma.uffd & VM_UFFD_MISSING) return handleUserfault(ctx);
  if (!write) {
    mm.thps.set(blockOf(addr), { zero: true, wp: false, writable: false, folio: 0, data: new Set(), lazyfree: false });
    return 'ok';
  }
  mm.thps.set(blockOf(addr), { zero: false, wp: false, writable: true, folio: mm.newFolio(), data: new Set(), lazyfree: false });
  thpStore(mm, addr);
  return 'ok';
}

/**
 * wp_huge_pmd(): a store to a PMD without write permission. A uffd-wp PMD in a uffd-wp VMA is
 * delivered, or with WP_ASYNC split (__split_huge_pmd()) and handled at the PTE level
 * ('fallback'); otherwise do_huge_pmd_wp_page(): the huge zero page is replaced by a new THP
 * (do_huge_zero_wp_pmd(), 6.13+), an exclusive THP reused (made writable; a stale bit stays).
 */
function wpHugePmd(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number): FaultResult | 'fallback' {
  const thp = mm.thpGet(addr)!;
  if (thp.wp && userfaultfdWp(vma)) {
    if (!userfaultfdWpAsync(vma, ctx)) return handleUserfault(ctx);
    mm.splitHugePmd(addr);
    return 'fallback';
  }
  if (thp.zero) {
    mm.anonVmaPrepare(vma);
    mm.thps.set(blockOf(addr), { zero: false, wp: false, writable: true, folio: mm.newFolio(), data: new Set(), lazyfree: false });
  } else {
    thp.writable = true;
  }
  thpStore(mm, addr);
  return 'ok';
}

/** handle_pte_fault() */
function handlePteFault(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean): FaultResult {
  const orig = mm.hasPteTable(addr) ? mm.pteGet(addr) : undefined;
  if (orig === undefined) return doPteMissing(mm, ctx, vma, addr, write, false);
  if (orig.kind === 'marker' || orig.kind === 'guard') return handlePteMarker(mm, ctx, vma, addr, write, orig);
  if (orig.kind === 'swap') return doSwapPage(mm, ctx, vma, addr, write, orig);
  if (write) return doWpPage(mm, ctx, vma, addr, orig);
  return 'ok';
}

/**
 * do_swap_page() for a genuine swap entry: only the faulting page is mapped again (read-ahead
 * fills the swap cache, not page tables). The page is exclusive (no fork here): it is mapped
 * writable unless the VMA is read-only or the entry carried a uffd-wp bit the VMA still traps
 * (userfaultfd_pte_wp()); a write to it then goes to do_wp_page().
 */
function doSwapPage(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean, orig: Pte & { kind: 'swap' }): FaultResult {
  const wp = orig.wp; // pte_swp_uffd_wp() -> pte_mkuffd_wp()
  const writable = (vma.prot & PROT_WRITE) !== 0 && !(wp && userfaultfdWp(vma));
  const page: Pte = { kind: 'page', wp, writable, lazyfree: false };
  mm.pteSet(addr, page);
  if (write && !writable) return doWpPage(mm, ctx, vma, addr, page);
  return 'ok';
}

/** handle_pte_marker() (reached through do_swap_page()) */
function handlePteMarker(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean, marker: Pte): FaultResult {
  if (marker.kind === 'guard') return 'SIGSEGV'; // hitting a guard page is always fatal
  // pte_marker_handle_uffd_wp(): a marker left in a VMA that is no longer uffd-wp is cleared, and
  // the retried access faults on the none entry.
  if (!userfaultfdWp(vma)) {
    mm.pteSet(addr, undefined); // pte_marker_clear()
    return handleMmFault(mm, ctx, vma, addr, write);
  }
  return doPteMissing(mm, ctx, vma, addr, write, true);
}

/** do_pte_missing(): do_anonymous_page() for anonymous VMAs, do_fault() for shmem. */
function doPteMissing(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean, uffdWp: boolean): FaultResult {
  if (vma.shm) return shmDoFault(mm, ctx, vma, addr, write, uffdWp, (pte) => doWpPage(mm, ctx, vma, addr, pte));
  return doAnonymousPage(mm, ctx, vma, addr, write, uffdWp);
}

/**
 * do_anonymous_page(). `uffdWp` is vmf_orig_pte_uffd_wp(): the fault came from a uffd-wp marker,
 * so the new entry is installed write-protected (pte_mkuffd_wp() also removes write permission).
 */
function doAnonymousPage(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean, uffdWp: boolean): FaultResult {
  mm.pteAlloc(addr); // pte_alloc() comes before anything else
  if (!write) {
    // The zero page for reads; a MISSING registration delivers the fault first.
    if (vma.uffd & VM_UFFD_MISSING) return handleUserfault(ctx);
    mm.pteSet(addr, { kind: 'zero', wp: uffdWp });
    return 'ok';
  }
  mm.anonVmaPrepare(vma);
  if (vma.uffd & VM_UFFD_MISSING) return handleUserfault(ctx);
  const page: Pte = { kind: 'page', wp: uffdWp, writable: !uffdWp, lazyfree: false };
  mm.pteSet(addr, page);
  // Installed read-only: the CPU retries the store, which faults again (do_wp_page()).
  if (uffdWp) return doWpPage(mm, ctx, vma, addr, page);
  return 'ok';
}

/** do_wp_page(): a store to a present entry without write permission. */
function doWpPage(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, orig: Pte): FaultResult {
  if (orig.kind !== 'page' && orig.kind !== 'zero' && orig.kind !== 'file') throw new Error('reference bug: do_wp_page() on a non-present entry');
  let wp = orig.wp;
  // userfaultfd_pte_wp(): only a VMA that is still uffd-wp traps the write.
  if (wp && userfaultfdWp(vma)) {
    if (!userfaultfdWpAsync(vma, ctx)) return handleUserfault(ctx);
    wp = false; // WP_ASYNC: the kernel clears the bit itself and carries on
  }
  if (orig.kind === 'file') {
    if (vma.shm!.shared) {
      // wp_page_shared(): the page made writable and dirty; a stale uffd-wp bit stays (and
      // then writes do not fault).
      mm.pteSet(addr, { kind: 'file', wp, writable: wp });
      shmDirty(vma, addr);
      return 'ok';
    }
    // wp_page_copy() of the page-cache page: a private anonymous copy, without the bit.
    mm.anonVmaPrepare(vma);
    mm.pteSet(addr, { kind: 'page', wp: false, writable: true, lazyfree: false });
    return 'ok';
  }
  if (orig.kind === 'zero') {
    // wp_page_copy(): a fresh writable page; the uffd-wp bit is not carried over (no unshare).
    mm.anonVmaPrepare(vma);
    mm.pteSet(addr, { kind: 'page', wp: false, writable: true, lazyfree: false });
    return 'ok';
  }
  // wp_page_reuse() of the exclusive anonymous page: dirty and writable. A stale uffd-wp bit in a
  // VMA that is no longer uffd-wp stays (maybe_mkwrite() does not clear it).
  const redirtied = orig.kind === 'page' && (orig.lazyfree || orig.redirtied === true);
  const page: Pte = { kind: 'page', wp, writable: true, lazyfree: false, redirtied };
  if (orig.folio !== undefined) {
    // A subpage of a large folio stays one (PageAnonExclusive); the store lands in it.
    page.folio = orig.folio;
    page.data = orig.data === true || !mm.noStore;
  }
  mm.pteSet(addr, page);
  return 'ok';
}
