// pagemap_scan_get_args(): each check and its order. The errnos are the kernel's (confirmed on
// Linux 6.18.44 by scenarios/args-einval.yaml and scenarios/args-efault.yaml).

import { pagemapScanGetArgs, accessOk } from '../src/scan/args';
import { TASK_SIZE_MAX, U64_MAX } from '../src/uapi';
import { B, P, scanArg } from './support/program';

const TASK = BigInt(TASK_SIZE_MAX);

describe('pagemap_scan_get_args', () => {
  test.each([
    ['size 88', { size: 88n }, 'EINVAL'],
    ['size 2^64-1', { size: U64_MAX }, 'EINVAL'],
    ['flag bit 2', { flags: 4n }, 'EINVAL'],
    ['flag bit 63', { flags: 1n << 63n }, 'EINVAL'],
    ['category_mask bit 9', { category_mask: 0x200n }, 'EINVAL'],
    ['category_inverted bit 9', { category_inverted: 0x200n }, 'EINVAL'],
    ['anyof bit 9', { category_anyof_mask: 0x200n }, 'EINVAL'],
    ['return_mask bit 9', { return_mask: 0x200n }, 'EINVAL'],
    ['unaligned start', { start: B + 1n, end: B + P }, 'EINVAL'],
    ['reversed range', { start: B + P, end: B }, 'EFAULT'],
    ['end above TASK_SIZE_MAX', { end: TASK + 1n }, 'EFAULT'],
    ['end 2^64-1', { end: U64_MAX }, 'EFAULT'],
    ['start above TASK_SIZE_MAX with start == end', { start: TASK + P, end: TASK + P }, 'EFAULT'],
    ['NULL vec with vec_len', { vec: 0n, vec_len: 1n }, 'EINVAL'],
    ['vec_len 2^64-1 (size_mul saturates)', { vec_len: U64_MAX }, 'EFAULT'],
    ['vec in the kernel half, vec_len 0', { vec: 1n << 63n, vec_len: 0n }, 'EFAULT'],
    // order: the EINVAL checks of sizes, flags and masks come before the range check
    ['bad mask beats reversed range', { category_mask: 0x400n, start: B + P, end: B }, 'EINVAL'],
    ['unaligned start beats reversed range', { start: B + 1n, end: B }, 'EINVAL'],
    ['reversed range beats NULL vec', { start: B + P, end: B, vec: 0n, vec_len: 8n }, 'EFAULT'],
  ])('%s -> %s', (_name, fields, errno) => {
    const r = pagemapScanGetArgs(scanArg({ end: B + 16n * P, ...fields }));
    expect(r).toEqual({ ok: false, errno });
  });

  test('end is rounded up to a page; max_pages 0 means no limit', () => {
    const r = pagemapScanGetArgs(scanArg({ end: B + 1n, max_pages: 0n }));
    if (!r.ok) throw new Error('rejected');
    expect(r.args.end).toBe(Number(B + P));
    expect(r.args.max_pages).toBeGreaterThan(2 ** 35); // more than the pages of the user half
  });

  test('the largest valid end and u64 fields survive exactly', () => {
    const r = pagemapScanGetArgs(scanArg({ start: TASK, end: TASK, max_pages: U64_MAX, vec: 0n, vec_len: 0n }));
    expect(r.ok).toBe(true);
  });

  test('access_ok: a range ending exactly at TASK_SIZE_MAX is valid, one byte more is not', () => {
    expect(accessOk(TASK - P, P)).toBe(true);
    expect(accessOk(TASK - P, P + 1n)).toBe(false);
    expect(accessOk(U64_MAX, 2n)).toBe(false);
  });
});
