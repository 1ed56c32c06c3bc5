// Runs small hand-built Programs on the REAL kernel and checks documented facts from
// /work/shared/spec/pagemap-scan-semantics.md (§3, §12, §14, §16). Needs Linux >= 6.7 and root.

import { ADVICES, type Op, type Program, type Step, VEC_ADDR, scanArg } from '../src/scenario/program';
import {
  PAGE_IS_GUARD,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  PAGE_IS_WPALLOWED,
  PAGE_IS_WRITTEN,
  PM_SCAN_CHECK_WPASYNC,
  PM_SCAN_WP_MATCHING,
  type PmScanArg,
  UFFD_FEATURES,
} from '../src/uapi';
import { encodeStep, runOnKernel, type KernelRun } from '../src/kernel';

const P = 4096n;
const B = 0x100000000000n; // 1 GiB aligned
const W = PAGE_IS_WRITTEN;
const PR = PAGE_IS_PRESENT;
const WP_ASYNC = BigInt(UFFD_FEATURES.WP_ASYNC | UFFD_FEATURES.WP_UNPOPULATED);

type StepSpec = Op | [Op, { mayFail: true }];

function program(name: string, specs: StepSpec[]): Program {
  const steps: Step[] = specs.map((spec, i) => {
    const [op, extra] = Array.isArray(spec) ? spec : [spec, undefined];
    return { index: i + 1, op, mayFail: extra?.mayFail ?? false, where: { file: `${name}.yaml`, line: i + 1, col: 1 } };
  });
  return {
    name,
    file: `${name}.yaml`,
    kernel: '6.18.44',
    system: { swap: false, thp: 'madvise' },
    steps,
    names: new Map(),
  };
}

const mmap = (addr: bigint, pages: bigint, kind: 'anon' | 'file-shared' = 'anon', prot = 3): Op => ({
  op: 'mmap',
  addr,
  size: pages * P,
  kind,
  prot,
});
const write = (addr: bigint, pages = 1n, stride = P): Op => ({ op: 'write', addr, size: pages * P, stride });
const read = (addr: bigint, pages = 1n): Op => ({ op: 'read', addr, size: pages * P, stride: P });
const scan = (arg: Partial<PmScanArg> = {}): Op => ({
  op: 'pagemap_scan',
  arg: scanArg({ start: B, end: B + 1024n * P, vec_len: 100n, return_mask: 0x1ffn, ...arg }),
});
/** [startPage, endPage, categories] relative to B */
const regions = (run: KernelRun, step: number) =>
  run.results
    .find((r) => r.step === step)!
    .regions!.map((r) => [Number((r.start - B) / P), Number((r.end - B) / P), r.categories]);
const result = (run: KernelRun, step: number) => run.results.find((r) => r.step === step)!;

const describeKernel = process.platform === 'linux' ? describe : describe.skip;

describeKernel('replay on the real kernel', () => {
  test('encodes steps as hex protocol lines', () => {
    const p = program('enc', [mmap(B, 1024n), scan({ vec_len: 0n }), [{ op: 'uffd_close' }, { mayFail: true }]]);
    expect(encodeStep(p.steps[0]!)).toBe('mmap 0x1 0 0x100000000000 0x400000 anon 0x3');
    expect(encodeStep(p.steps[1]!)).toBe(
      'pagemap_scan 0x2 0 0x60 0x0 0x100000000000 0x100000400000 0x0 0x600000000000 0x0 0x0 0x0 0x0 0x0 0x1ff',
    );
    expect(encodeStep(p.steps[2]!)).toBe('uffd_close 0x3 1');
  });

  test('§16 vectors 1-7: 4 MiB anon, write 0p and 3p, read 5p', async () => {
    const run = await runOnKernel(
      program('vectors', [
        mmap(B, 1024n),
        write(B, 4n, 3n * P), // 0p and 3p
        read(B + 5n * P),
        scan({ category_mask: BigInt(W), return_mask: BigInt(W) }), // #1
        scan(), // #2
        scan({ category_mask: BigInt(PR), max_pages: 1n }), // #3
        scan({ vec_len: 1n }), // #4
        scan({ return_mask: 0n }), // #5
        scan({ category_anyof_mask: BigInt(W) }), // #6
        scan({ category_inverted: BigInt(PR), category_mask: BigInt(PR) }), // #7
      ]),
    );
    expect(run.stopped).toBeUndefined();
    expect(run.unreproduced).toEqual([]);
    expect(run.results.slice(0, 3).map((r) => [r.op, r.ret, r.errno])).toEqual([
      ['mmap', 0n, null],
      ['write', 0n, null],
      ['read', 0n, null],
    ]);
    const end = B + 1024n * P;

    // #1
    expect(result(run, 4)).toMatchObject({ ret: 1n, errno: null, walk_end: end });
    expect(regions(run, 4)).toEqual([[0, 512, W]]);
    // #2 = Q1
    const q1 = [
      [0, 1, PR | W],
      [1, 3, W],
      [3, 4, PR | W],
      [4, 5, W],
      [5, 6, PAGE_IS_PFNZERO | PR | W],
      [6, 512, W],
      [512, 1024, 0],
    ];
    expect(result(run, 5)).toMatchObject({ ret: 7n, walk_end: end });
    expect(regions(run, 5)).toEqual(q1);
    // #3
    expect(result(run, 6)).toMatchObject({ ret: 1n, walk_end: B + 3n * P });
    expect(regions(run, 6)).toEqual([[0, 1, PR | W]]);
    // #4
    expect(result(run, 7)).toMatchObject({ ret: 1n, walk_end: B + 1n * P });
    expect(regions(run, 7)).toEqual([[0, 1, PR | W]]);
    // #5
    expect(result(run, 8)).toMatchObject({ ret: 1n, walk_end: end });
    expect(regions(run, 8)).toEqual([[0, 1024, 0]]);
    // #6
    expect(result(run, 9)).toMatchObject({ ret: 6n, walk_end: end });
    expect(regions(run, 9)).toEqual(q1.slice(0, 6));
    // #7
    expect(result(run, 10)).toMatchObject({ ret: 4n, walk_end: end });
    expect(regions(run, 10)).toEqual([
      [1, 3, W],
      [4, 5, W],
      [6, 512, W],
      [512, 1024, 0],
    ]);
  });

  test('§3 / §16 #21-23: validation errors leave walk_end unwritten', async () => {
    const run = await runOnKernel(
      program('validation', [
        mmap(B, 16n),
        scan({ size: 88n }),
        scan({ flags: 4n }),
        scan({ category_mask: 0x200n }),
        scan({ start: B + 1n }),
        scan({ end: B - P }),
        scan({ vec: 0n, vec_len: 1n }),
        scan({ end: 0x800000000000n }),
        scan({ category_mask: BigInt(PAGE_IS_GUARD) }),
        scan({ end: B }), // start == end
        scan({ end: B + 1n }), // end rounded up (Q19)
      ]),
    );
    expect(run.stopped).toBeUndefined();
    const errs = run.results.slice(1).map((r) => [r.ret, r.errno, r.walk_end, r.regions?.length]);
    expect(errs).toEqual([
      [-1n, 'EINVAL', null, 0],
      [-1n, 'EINVAL', null, 0],
      [-1n, 'EINVAL', null, 0],
      [-1n, 'EINVAL', null, 0],
      [-1n, 'EFAULT', null, 0],
      [-1n, 'EINVAL', null, 0],
      [-1n, 'EFAULT', null, 0],
      [0n, null, B + 1024n * P, 0],
      [0n, null, B, 0],
      [1n, null, B + P, 1],
    ]);
    expect(regions(run, 11)).toEqual([[0, 1, 0]]);
  });

  test('overlapping mmap: EEXIST; without may_fail the scenario stops there', async () => {
    const run = await runOnKernel(
      program('eexist', [
        mmap(B, 16n),
        [mmap(B + 4n * P, 4n), { mayFail: true }],
        write(B),
        mmap(B + 8n * P, 16n),
        write(B + P),
        scan(),
      ]),
    );
    expect(run.results.map((r) => [r.step, r.ret, r.errno])).toEqual([
      [1, 0n, null],
      [2, -1n, 'EEXIST'],
      [3, 0n, null],
      [4, -1n, 'EEXIST'],
    ]);
    expect(run.stopped).toEqual({ step: 4, reason: 'failed' });
    expect(run.notReached).toEqual([5, 6]);
  });

  test('a write to a PROT_READ mapping is SIGSEGV; may_fail goes on with the next page', async () => {
    const run = await runOnKernel(
      program('segv', [
        mmap(B, 4n, 'anon', 1),
        mmap(B + 4n * P, 4n),
        [write(B + 2n * P, 4n), { mayFail: true }], // 2p, 3p fault; 4p, 5p are written
        scan({ end: B + 8n * P }),
        write(B),
        scan(),
      ]),
    );
    expect(result(run, 3)).toMatchObject({ ret: -1n, errno: 'SIGSEGV' });
    expect(regions(run, 4)).toEqual([
      [0, 4, W], // read-only VMA: none slots of the (shared) PTE table
      [4, 6, PR | W],
      [6, 8, W],
    ]);
    expect(result(run, 5)).toMatchObject({ ret: -1n, errno: 'SIGSEGV' });
    expect(run.stopped).toEqual({ step: 5, reason: 'failed' });
    expect(run.notReached).toEqual([6]);
  });

  test('§16 #12 / Q13: CHECK_WPASYNC fails with EPERM late, keeping the regions already copied', async () => {
    const A = B;
    const run = await runOnKernel(
      program('eperm', [
        mmap(A, 16n),
        mmap(A + 32n * P, 32n),
        { op: 'uffd_open', features: WP_ASYNC },
        { op: 'uffd_register', addr: A, size: 16n * P, mode: 2n },
        write(A, 16n, 2n * P), // even pages
        scan({ flags: BigInt(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC), end: A + 64n * P }),
        scan({ end: A + 16n * P }),
      ]),
    );
    expect(run.stopped).toBeUndefined();
    const eperm = result(run, 6);
    expect(eperm).toMatchObject({ ret: -1n, errno: 'EPERM', walk_end: A + 64n * P });
    const alternating = Array.from({ length: 16 }, (_, i) => [
      i,
      i + 1,
      PAGE_IS_WPALLOWED | W | (i % 2 === 0 ? PR : 0),
    ]);
    expect(regions(run, 6)).toEqual(alternating);
    // A was write-protected: present pages lost WRITTEN, none slots became markers (SWAPPED).
    expect(regions(run, 7)).toEqual(
      Array.from({ length: 16 }, (_, i) => [i, i + 1, PAGE_IS_WPALLOWED | (i % 2 === 0 ? PR : PAGE_IS_SWAPPED)]),
    );
  });

  test('§16 #8: exclusive WP then default scan', async () => {
    const run = await runOnKernel(
      program('v8', [
        mmap(B, 1024n),
        { op: 'uffd_open', features: WP_ASYNC },
        { op: 'uffd_register', addr: B, size: 1024n * P, mode: 2n },
        write(B),
        scan({ flags: BigInt(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC), vec_len: 0n }),
        scan(),
      ]),
    );
    expect(result(run, 5)).toMatchObject({ ret: 0n, errno: null, walk_end: B + 1024n * P, regions: [] });
    expect(regions(run, 6)).toEqual([
      [0, 1, PAGE_IS_WPALLOWED | PR],
      [1, 1024, PAGE_IS_WPALLOWED | PAGE_IS_SWAPPED],
    ]);
  });

  test('a write fault on a synchronously write-protected page is a result: the queued userfaultfd message', async () => {
    const run = await runOnKernel(
      program('blocked', [
        mmap(B, 16n),
        write(B),
        { op: 'uffd_open', features: 0n },
        { op: 'uffd_register', addr: B, size: 16n * P, mode: 2n },
        { op: 'uffd_writeprotect', addr: B, size: 16n * P, wp: true },
        write(B),
        scan(),
      ]),
      { stepTimeoutMs: 300 },
    );
    expect(run.results.map((r) => r.errno)).toEqual([null, null, null, null, null, null]);
    // UFFD_EVENT_PAGEFAULT with UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP, at the page.
    expect(run.results[5]).toEqual({ step: 6, op: 'write', ret: -1n, errno: null, userfault: { address: B, flags: ['WRITE', 'WP'] } });
    expect(run.unreproduced).toEqual([]);
    expect(run.stopped).toEqual({ step: 6, reason: 'userfault' });
    expect(run.notReached).toEqual([7]);
  });

  test('MADV_POPULATE_READ into a MISSING range (a killable wait) is a result too', async () => {
    const run = await runOnKernel(
      program('populate-blocked', [
        mmap(B, 16n),
        write(B),
        { op: 'uffd_open', features: 0n },
        { op: 'uffd_register', addr: B, size: 16n * P, mode: 1n },
        { op: 'madvise', addr: B, size: 4n * P, advice: 'populate-read' },
        scan(),
      ]),
      { stepTimeoutMs: 300 },
    );
    expect(run.results[4]).toEqual({ step: 5, op: 'madvise', ret: -1n, errno: null, userfault: { address: B + P, flags: [] } });
    expect(run.stopped).toEqual({ step: 5, reason: 'userfault' });
    expect(run.notReached).toEqual([6]);
  });

  test('Q21: MADV_GUARD_INSTALL over a uffd-wp marker in shmem spins: a restart-loop, the step\'s result', async () => {
    const run = await runOnKernel(
      program('q21', [
        { op: 'mmap', addr: B, size: 16n * P, kind: 'memfd-shared', prot: 3 },
        { op: 'uffd_open', features: WP_ASYNC },
        { op: 'uffd_register', addr: B, size: 16n * P, mode: 2n },
        write(B),
        scan({ flags: BigInt(PM_SCAN_WP_MATCHING), vec_len: 0n, end: B + 16n * P }),
        { op: 'madvise', addr: B + P, size: P, advice: 'guard-install' },
        scan(),
      ]),
      { stepTimeoutMs: 200, stepLimitMs: 10_000 },
    );
    expect(run.results).toHaveLength(6);
    expect(run.results[5]).toEqual({ step: 6, op: 'madvise', ret: -1n, errno: null, hang: { why: 'restart-loop' } });
    expect(run.unreproduced).toEqual([]);
    expect(run.stopped).toEqual({ step: 6, reason: 'livelock' });
    expect(run.notReached).toEqual([7]);
  });

  test('unsupported steps: pfnmap, and ranges over the harness itself', async () => {
    const pfn = await runOnKernel(program('pfnmap', [{ op: 'mmap', addr: B, size: P, kind: 'pfnmap', prot: 1 }, scan()]));
    expect(pfn.unreproduced).toEqual([expect.objectContaining({ step: 1, reason: 'unsupported' })]);
    expect(pfn.notReached).toEqual([2]);

    const own = await runOnKernel(program('own', [{ op: 'munmap', addr: VEC_ADDR, size: P }]));
    expect(own.unreproduced[0]).toMatchObject({ step: 1, reason: 'unsupported' });
    expect(own.unreproduced[0]!.detail).toMatch(/harness's own mapping 0x600000000000-/);
    expect(own.harness.maps.some((m) => m.start === VEC_ADDR)).toBe(true);
  });

  test('scans that walk over the harness itself are flagged', async () => {
    const run = await runOnKernel(
      program('overlap', [
        mmap(B, 4n),
        scan({ start: 0n, end: 0x7ffffffff000n, return_mask: 0n }),
        scan({ end: B + 4n * P }),
        scan({ start: 0n, end: 0x800000000000n }), // EFAULT: no walk
      ]),
    );
    expect(run.harnessOverlaps.map((o) => o.step)).toEqual([2]);
    const names = run.harnessOverlaps[0]!.mappings.map((m) => m.name);
    expect(names).toContain('[stack]');
    expect(run.harnessOverlaps[0]!.mappings.some((m) => m.start === VEC_ADDR)).toBe(true);
  });

  test('guard pages: SIGSEGV on touch, GUARD|SWAPPED|WRITTEN in a scan', async () => {
    const run = await runOnKernel(
      program('guard', [
        mmap(B, 8n),
        write(B, 8n),
        { op: 'madvise', addr: B + 2n * P, size: 2n * P, advice: 'guard-install' },
        [read(B + P, 3n), { mayFail: true }],
        scan({ end: B + 8n * P }),
        { op: 'clear_refs', value: 4n },
      ]),
    );
    expect(ADVICES['guard-install']).toBe(102);
    expect(result(run, 4)).toMatchObject({ ret: -1n, errno: 'SIGSEGV' });
    expect(regions(run, 5)).toEqual([
      [0, 2, PR | W],
      [2, 4, PAGE_IS_GUARD | PAGE_IS_SWAPPED | W],
      [4, 8, PR | W],
    ]);
    expect(result(run, 6)).toMatchObject({ ret: 0n, errno: null });
  });
});
