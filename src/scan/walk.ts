// The page-table walk of one PAGEMAP_SCAN pass: walk_page_range() (mm/pagewalk.c) with the
// pagemap_scan_ops callbacks of fs/proc/task_mmu.c. Each method is named after the kernel
// function it mirrors.
//
// Runs instead of pages: the kernel visits one PTE at a time; here a run of equal entries is
// handled in one step. That gives the same answers because equal neighbouring units coalesce
// into one region, max_pages cuts a run at the same page the per-page loop would stop at, and
// the side effects (write-protect) apply to exactly the pages emitted. Likewise a run of 2 MiB
// blocks that all have PTE tables is one pmd_entry() call, and adjacent holes are one hole.

import { PAGE_IS_FILE, PAGE_IS_WPALLOWED, PAGE_IS_SOFT_DIRTY, PAGE_IS_WRITTEN, PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING, PMD_SIZE } from '../uapi';
import type { MmStruct } from '../mm/mm';
import { isHugeLeaf, isTable, pteIsWriteProtected, pteUffdWp, PTE_UFFD_WP } from '../mm/pte';
import { splitHugePmd } from '../mm/huge_memory';
import { pteMkUffdWp, uffdWpRange, userfaultfdWpAsync, userfaultfdWpUseMarkers, type UffdCtx } from '../mm/userfaultfd';
import { isHugetlb, isPfnmap, userfaultfdWp, type Vma } from '../mm/vma';
import type { KernelProfile } from '../profiles';
import type { ScanArgs } from './args';
import { hugetlbCategory, isInterestingPage, isInterestingVma, pageCategory, thpCategory } from './categories';
import { hugetlbChangeProtection, hugetlbLevels, hugetlbTableExists } from '../mm/hugetlb';
import type { ScanOutput, WalkResult } from './output';
import { KernelHang } from '../mm/hang';


export class PagemapScanWalk {
  /** p->cur_vma_category, and walk->vma */
  private curVmaCategory = 0;
  private vma: Vma | undefined;
  /** PAGE_IS_FILE is computed only when a mask asks for it (p->masks_of_interest). */
  private readonly wantFile: boolean;

  constructor(
    private readonly mm: MmStruct,
    private readonly ctx: UffdCtx | null,
    private readonly args: ScanArgs,
    private readonly out: ScanOutput,
    private readonly profile: KernelProfile,
  ) {
    const interest = args.category_mask | args.category_anyof_mask | args.return_mask;
    this.wantFile = (interest & PAGE_IS_FILE) !== 0;
  }

  private get wpMatching(): boolean {
    return (this.args.flags & PM_SCAN_WP_MATCHING) !== 0;
  }

  /** walk_page_range(): each VMA of [start, end) in order; gaps produce nothing. */
  walkPageRange(start: number, end: number): WalkResult {
    for (const vma of this.mm.vmasIn(start, end)) {
      const test = this.testWalk(vma);
      if (test === 'EPERM') return test;
      if (test === 'skip') continue;
      this.vma = vma;
      const lo = Math.max(start, vma.start);
      const hi = Math.min(end, vma.end);
      const err = isHugetlb(vma) ? this.walkHugetlbRange(vma, lo, hi) : this.walkPgdRange(vma, lo, hi);
      if (err) return err;
    }
    return 0;
  }

  /** pagemap_scan_test_walk(): walk, skip, or fail on one VMA. */
  testWalk(vma: Vma): 'walk' | 'skip' | 'EPERM' {
    const wpAllowed = userfaultfdWpAsync(vma, this.ctx) && userfaultfdWpUseMarkers(vma, this.ctx);
    if (!wpAllowed) {
      if (this.args.flags & PM_SCAN_CHECK_WPASYNC) return 'EPERM';
      if (this.args.flags & PM_SCAN_WP_MATCHING) return 'skip';
    }
    if (isPfnmap(vma)) return 'skip';
    let vmaCategory = 0;
    if (wpAllowed) vmaCategory |= PAGE_IS_WPALLOWED;
    if (vma.softDirty) vmaCategory |= PAGE_IS_SOFT_DIRTY;
    if (!isInterestingVma(vmaCategory, this.args)) return 'skip';
    this.curVmaCategory = vmaCategory;
    return 'walk';
  }

  /** walk_pgd_range() down to walk_pmd_range(): holes, THPs and runs of PTE tables. */
  private walkPgdRange(vma: Vma, start: number, end: number): WalkResult {
    let addr = start;
    while (addr < end) {
      const run = this.mm.pmd.map.runAt(this.mm.pmd.index(addr));
      let next: number;
      let err: WalkResult;
      if (run.value === undefined) {
        next = Math.min(end, run.end * PMD_SIZE);
        err = this.pteHole(vma, addr, next);
      } else if (isTable(run.value)) {
        next = Math.min(end, run.end * PMD_SIZE);
        err = this.pmdEntry(addr, next);
      } else {
        next = Math.min(end, (this.mm.pmd.index(addr) + 1) * PMD_SIZE);
        err = this.pmdEntry(addr, next);
      }
      if (err) return err;
      addr = next;
    }
    return 0;
  }

  /**
   * walk_hugetlb_range(): one huge page at a time, each either an entry (a table exists) or a
   * hole. Without WP_MATCHING a run of equal slots is one unit (see the header comment); with it
   * each page is its own unit, since write-protection and back-out act per page.
   */
  private walkHugetlbRange(vma: Vma, start: number, end: number): WalkResult {
    const { entries, size } = hugetlbLevels(this.mm, vma);
    for (let addr = start; addr < end; ) {
      let next = Math.min(end, Math.floor(addr / size) * size + size);
      const table = hugetlbTableExists(this.mm, vma, addr);
      const entry = table ? entries.get(addr) : undefined;
      if (!this.wpMatching) next = Math.min(end, this.hugetlbRunEnd(vma, addr, table));
      const err = table ? this.hugetlbEntry(addr, next, entry, size) : this.pteHole(vma, addr, next);
      if (err) return err;
      addr = next;
    }
    return 0;
  }

  /** Where the run of hugetlb slots equal to the one at addr (entry and table presence) ends. */
  private hugetlbRunEnd(vma: Vma, addr: number, table: boolean): number {
    const { entries, tables } = hugetlbLevels(this.mm, vma);
    const tableRun = tables.map.runAt(tables.index(addr));
    const p4d = this.mm.p4d.map.runAt(this.mm.p4d.index(addr));
    let end = Math.min(tableRun.end * tables.size, tables === this.mm.p4d ? Infinity : p4d.end * this.mm.p4d.size);
    if (table) end = Math.min(end, entries.map.runAt(entries.index(addr)).end * entries.size);
    return end;
  }

  /** pagemap_scan_hugetlb_entry() */
  private hugetlbEntry(start: number, end: number, entry: number | undefined, size: number): WalkResult {
    const categories = this.curVmaCategory | hugetlbCategory(entry);
    if (!isInterestingPage(categories, this.args)) return 0;
    const o = this.out.output(categories, start, end);
    if (!this.wpMatching) return o.ret;
    if (o.end === start) return o.ret;
    if (!(categories & PAGE_IS_WRITTEN)) return o.ret;
    // Partial hugetlb WP isn't possible: back out, and go on with the next page.
    const whole = this.profile.hugetlbWpWholePage ? size : PMD_SIZE;
    if (o.end !== start + whole) {
      this.out.backoutRange(start, o.end);
      this.out.walkEnd = start;
      return 0;
    }
    // make_uffd_wp_huge_pte()
    const { entries } = hugetlbLevels(this.mm, this.vma!);
    if (isHugeLeaf(entry)) entries.set(start, o.end, entry! | PTE_UFFD_WP);
    return o.ret;
  }

  /** pagemap_scan_pte_hole(): a range without page table inside a VMA. */
  pteHole(vma: Vma, addr: number, end: number): WalkResult {
    let categories = this.curVmaCategory;
    // B2: a hole in a uffd-wp VMA reads as written (not for hugetlb).
    if (this.profile.holeIsWrittenInUffdWp && userfaultfdWp(vma) && !isHugetlb(vma)) categories |= PAGE_IS_WRITTEN;
    if (!isInterestingPage(categories, this.args)) return 0;
    const o = this.out.output(categories, addr, end);
    if (o.end === addr) return o.ret;
    if (!this.wpMatching) return o.ret;
    if (isHugetlb(vma)) this.hugetlbHoleWriteProtect(vma, addr, o.end);
    else uffdWpRange(this.mm, vma, this.ctx, addr, o.end, true);
    return o.ret;
  }

  /** The hole path's write-protect of a hugetlb slot: allocate its table, install a marker. */
  private hugetlbHoleWriteProtect(vma: Vma, start: number, end: number): void {
    if (!this.profile.hugetlbHoleWp) {
      // Before B4: uffd_wp_range() -> hugetlb_change_protection() takes hugetlb_vma_lock_write()
      // while walk_hugetlb_range() holds the same lock for read: an unkillable self-deadlock.
      throw new KernelHang(
        'deadlock',
        'pagemap_scan_pte_hole() write-protects a hugetlb hole with uffd_wp_range(), whose hugetlb_change_protection() waits for the hugetlb VMA lock the walk holds (fixed by the B4 back-port)',
      );
    }
    const { size } = hugetlbLevels(this.mm, vma);
    const slot = Math.floor(start / size) * size;
    hugetlbChangeProtection(this.mm, vma, this.ctx, slot, Math.max(slot + size, Math.ceil(end / size) * size), true);
  }

  /** pagemap_scan_thp_entry(): a PMD leaf; 'ENOENT' hands the range to the PTE loop. */
  private thpEntry(start: number, end: number): WalkResult | 'ENOENT' {
    const pmd = this.mm.pmd.get(start);
    if (!isHugeLeaf(pmd)) return 'ENOENT';
    const categories = this.curVmaCategory | thpCategory(pmd!, this.wantFile, this.profile);
    if (!isInterestingPage(categories, this.args)) return 0;
    const o = this.out.output(categories, start, end);
    if (o.end === start) return o.ret;
    if (!this.wpMatching) return o.ret;
    if (!(categories & PAGE_IS_WRITTEN)) return o.ret;
    // A partial THP (range edge or max_pages cut) is split and reported again per PTE.
    if (o.end !== start + PMD_SIZE) {
      splitHugePmd(this.mm, start);
      this.out.backoutRange(start, o.end);
      // A file THP is only unmapped: the PMD is walked again as a hole (ACTION_AGAIN).
      if (this.mm.pmd.get(start) === undefined) return this.pteHole(this.vma!, start, end);
      return 'ENOENT';
    }
    // make_uffd_wp_pmd()
    this.mm.pmd.set(start, o.end, pmd! | PTE_UFFD_WP);
    return o.ret;
  }

  /** pagemap_scan_pmd_entry(): a THP, or PTE tables, with the two fast paths first. */
  private pmdEntry(start: number, end: number): WalkResult {
    const thp = this.thpEntry(start, end);
    if (thp !== 'ENOENT') return thp;
    if (this.wpMatching && !this.out.hasBuffer) return this.exclusiveWriteProtect(start, end);
    const a = this.args;
    if (!a.category_anyof_mask && !a.category_inverted && a.category_mask === PAGE_IS_WRITTEN && a.return_mask === PAGE_IS_WRITTEN) {
      return this.writtenFastPath(start, end);
    }
    return this.ptesGeneral(start, end);
  }

  /** Fast path for exclusive WP (no output array): every slot not yet WP'd, masks ignored. */
  private exclusiveWriteProtect(start: number, end: number): WalkResult {
    for (let addr = start; addr < end; ) {
      const { pte, next } = this.pteRun(addr, end);
      if (!this.fastPathSeesWp(pte)) this.makeUffdWpPtes(addr, next, pte);
      addr = next;
    }
    return 0;
  }

  /** Fast path when only PAGE_IS_WRITTEN is asked for: every slot not yet WP'd is written. */
  private writtenFastPath(start: number, end: number): WalkResult {
    for (let addr = start; addr < end; ) {
      const { pte, next } = this.pteRun(addr, end);
      if (!this.fastPathSeesWp(pte)) {
        const o = this.out.output(this.curVmaCategory | PAGE_IS_WRITTEN, addr, next);
        if (o.end === addr) return o.ret;
        if (this.wpMatching) this.makeUffdWpPtes(addr, o.end, pte);
        if (o.ret) return o.ret;
      }
      addr = next;
    }
    return 0;
  }

  /** The general PTE loop: classify, filter, output, write-protect what was written. */
  private ptesGeneral(start: number, end: number): WalkResult {
    for (let addr = start; addr < end; ) {
      const { pte, next } = this.pteRun(addr, end);
      const categories = this.curVmaCategory | pageCategory(pte, this.wantFile, this.profile);
      if (isInterestingPage(categories, this.args)) {
        const o = this.out.output(categories, addr, next);
        if (o.end === addr) return o.ret;
        if (this.wpMatching && categories & PAGE_IS_WRITTEN) this.makeUffdWpPtes(addr, o.end, pte);
        if (o.ret) return o.ret;
      }
      addr = next;
    }
    return 0;
  }

  /** The fast paths' test for an entry already write-protected (before 6.9: present ones only). */
  private fastPathSeesWp(pte: number | undefined): boolean {
    if (pte === undefined) return false;
    return this.profile.fastPathSeesSwapWp ? pteIsWriteProtected(pte) : pteUffdWp(pte);
  }

  /** The run of equal PTE slots starting at addr, clipped to end. */
  private pteRun(addr: number, end: number): { pte: number | undefined; next: number } {
    const run = this.mm.pte.map.runAt(this.mm.pte.index(addr));
    return { pte: run.value, next: Math.min(end, run.end * 4096) };
  }

  /** make_uffd_wp_pte() on a run of equal slots. */
  private makeUffdWpPtes(start: number, end: number, pte: number | undefined): void {
    this.mm.pte.set(start, end, pteMkUffdWp(pte));
  }
}

