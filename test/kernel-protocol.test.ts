// Parsing the harness's output and judging the environment, without running anything.

import { EnvironmentError } from '../src/errors';
import type { Op, Program, Step } from '../src/scenario/program';
import { UFFD_FEATURES } from '../src/uapi';
import { checkProgramSupport, parseReplayOutput, type HarnessInfo } from '../src/kernel';

function program(ops: Op[]): Program {
  const steps: Step[] = ops.map((op, i) => ({ index: i + 1, op, mayFail: false, where: { file: 'p.yaml', line: i + 1, col: 1 } }));
  return { name: 'p', file: 'p.yaml', kernel: '6.18.44', system: { swap: false, thp: 'madvise' }, steps, names: new Map() };
}

const info = (over: Partial<HarnessInfo> = {}): HarnessInfo => ({
  pid: 1,
  kernel: '6.6.0',
  machine: 'x86_64',
  pageSize: 4096,
  pagemapScan: 'ok',
  userfaultfd: 'ok',
  uffdFeatures: 0x1ffffn,
  vec: 'ok',
  stepTimeoutMs: 5000,
  stepLimitMs: 60000,
  maps: [],
  ...over,
});

const mmap: Op = { op: 'mmap', addr: 0x100000000000n, size: 0x1000n, kind: 'anon', prot: 3 };
const uffdOpen: Op = { op: 'uffd_open', features: BigInt(UFFD_FEATURES.WP_ASYNC | UFFD_FEATURES.WP_UNPOPULATED) };
const hello =
  '{"harness":{"pid":7,"kernel":"6.18.44","machine":"x86_64","page_size":4096,"vec":"ok","pagemap_scan":"ok",' +
  '"userfaultfd":"ok","uffd_features":"0x1ffff","step_timeout_ms":5000,"step_limit_ms":60000,' +
  '"maps":[{"start":"0x600000000000","end":"0x600001800000","name":"[anonymous]"}]}}';

describe('checkProgramSupport', () => {
  test('no PAGEMAP_SCAN is an EnvironmentError naming the kernel', () => {
    expect(() => checkProgramSupport(program([mmap]), info({ pagemapScan: 'ENOTTY' }))).toThrow(EnvironmentError);
    expect(() => checkProgramSupport(program([mmap]), info({ pagemapScan: 'ENOTTY' }))).toThrow(
      /6\.6\.0.*no PAGEMAP_SCAN.*ENOTTY.*6\.7/,
    );
  });

  test('userfaultfd is only required by programs that use it', () => {
    expect(() => checkProgramSupport(program([mmap]), info({ userfaultfd: 'EPERM' }))).not.toThrow();
    expect(() => checkProgramSupport(program([mmap, uffdOpen]), info({ userfaultfd: 'EPERM' }))).toThrow(
      /step 2 needs userfaultfd.*not permitted/,
    );
  });

  test('missing userfaultfd features are an EnvironmentError', () => {
    const old = info({ uffdFeatures: BigInt((1 << 13) - 1) });
    expect(() => checkProgramSupport(program([uffdOpen]), old)).toThrow(/WP_UNPOPULATED, WP_ASYNC/);
    // Bits the uapi does not know are the scenario's business (EINVAL is a result).
    expect(() => checkProgramSupport(program([{ op: 'uffd_open', features: 1n << 40n }]), old)).not.toThrow();
  });
});

describe('parseReplayOutput', () => {
  const steps = program([mmap, mmap, mmap]).steps;
  const ok = { code: 0, signal: null, timedOut: false };

  test('a complete run', () => {
    const out = [
      hello,
      '{"step":1,"op":"mmap","ret":0,"errno":null}',
      '{"step":2,"op":"mmap","ret":-1,"errno":"EEXIST"}',
      '{"end":"stopped","step":2,"reason":"failed"}',
      '',
    ].join('\n');
    const run = parseReplayOutput(out, steps, ok);
    expect(run.harness.maps).toEqual([{ start: 0x600000000000n, end: 0x600001800000n, name: '[anonymous]' }]);
    expect(run.results).toEqual([
      { step: 1, op: 'mmap', ret: 0n, errno: null },
      { step: 2, op: 'mmap', ret: -1n, errno: 'EEXIST' },
    ]);
    expect(run.stopped).toEqual({ step: 2, reason: 'failed' });
    expect(run.notReached).toEqual([3]);
  });

  test('a harness that dies mid-step blames that step', () => {
    const out = [hello, '{"step":1,"op":"mmap","ret":0,"errno":null}'].join('\n');
    const crashed = parseReplayOutput(out, steps, { code: null, signal: 'SIGSEGV', timedOut: false });
    expect(crashed.unreproduced).toEqual([
      { step: 2, op: 'mmap', reason: 'crash', detail: 'the kernel harness was killed by SIGSEGV during this step' },
    ]);
    expect(crashed.stopped).toEqual({ step: 2, reason: 'crash' });
    expect(crashed.notReached).toEqual([3]);

    const timedOut = parseReplayOutput(out, steps, { code: null, signal: 'SIGKILL', timedOut: true });
    expect(timedOut.stopped).toEqual({ step: 2, reason: 'timeout' });
  });

  test('an errno the emulator has no name for is kept, with a warning', () => {
    const out = [hello, '{"step":1,"op":"mmap","ret":-1,"errno":"ENODEV"}', '{"end":"complete"}'].join('\n');
    const run = parseReplayOutput(out, steps.slice(0, 1), ok);
    expect(run.results[0]!.errno).toBe('ENODEV');
    expect(run.warnings).toEqual(['step 1: the kernel returned ENODEV, which the emulator has no name for']);
  });

  test('protocol errors are bugs, not results', () => {
    const out = [hello, '{"end":"protocol-error","line":1,"reason":"unknown op"}'].join('\n');
    expect(() => parseReplayOutput(out, steps, ok)).toThrow(/rejected its input at line 1: unknown op/);
    expect(() => parseReplayOutput('', steps, ok)).toThrow(/printed nothing/);
  });
});
