// The command line: commander parses, each command lives in its own module, and every error
// becomes a one-line message and an exit code (never a stack trace).

import { Command, CommanderError, Option } from 'commander';
import { EnvironmentError, EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE, InputError } from '../errors';
import { PROFILES } from '../profiles';
import { colorLevel, makeChalk } from './color';
import { processIo, type Io } from './io';
import { recordCommand } from './record';
import { runCommand } from './run';
import { verifyCommand } from './verify';
import { exportC } from '../kernel';
import { loadScenarioFile } from '../scenario';
import { testCommand } from './test';

const EXIT_CODES = `
Exit codes:
  0  ok
  1  an expectation or a comparison with the real kernel failed
  2  bad input or usage (a scenario file, an argument), or a step failed without may_fail
  3  the environment cannot run it (no kernel support, no compiler, no permission)
  70 an internal error of pagemap-scan (a bug: please report it with the scenario)

Errors name the file, line, column and key:  scenarios/x.yaml:12:7: mmap.size: expected ...`;

const EXAMPLES = `
Examples:
  $ pagemap-scan run scenarios/write-watch.yaml
  $ pagemap-scan run --json scenarios/write-watch.yaml
  $ pagemap-scan test scenarios/
  $ pagemap-scan test --reporter tap scenarios/
  $ pagemap-scan verify scenarios/                 # compare with this machine's kernel
  $ pagemap-scan export-c scenarios/write-watch.yaml > repro.c && cc -Wall -o repro repro.c && ./repro
  $ pagemap-scan record scenarios/my-case.yaml    # fill expect blocks from the real kernel`;

export function buildProgram(io: Io, exit: { code: number }): Command {
  const program = new Command('pagemap-scan');
  program
    .description("Emulates Linux's PAGEMAP_SCAN ioctl (/proc/PID/pagemap) over a simulated address space, step by step from a YAML scenario.")
    .version(require('../../package.json').version)
    .option('--no-color', 'never colour the output (NO_COLOR is honoured too)')
    .addHelpText('after', EXIT_CODES + '\n' + EXAMPLES)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    })
    .showHelpAfterError('(run pagemap-scan --help for usage)');

  const chalkFor = (): ReturnType<typeof makeChalk> =>
    makeChalk(colorLevel({ color: program.opts().color, stream: { isTTY: io.isTTY }, env: io.env }));
  const kernelOption = () =>
    new Option('--kernel <profile>', 'kernel semantics profile, overriding the scenario').choices(Object.keys(PROFILES));

  program
    .command('run')
    .description('run scenarios step by step and print every scan: its arguments, return value, walk_end and regions')
    .argument('<file...>', 'scenario files (YAML)')
    .option('--json', 'print the results as JSON (scenario-format.md)')
    .addOption(kernelOption())
    .action((files: string[], opts) => {
      exit.code = runCommand(files, opts, io, opts.json ? makeChalk(0) : chalkFor());
    });

  program
    .command('test')
    .description('run scenarios and check their expect blocks; ends with "N passed, N failed"')
    .argument('<path...>', 'scenario files, or directories of them')
    .addOption(new Option('--reporter <name>', 'output format').choices(['default', 'tap']).default('default'))
    .addOption(kernelOption())
    .action((paths: string[], opts) => {
      exit.code = testCommand(paths, opts, io, opts.reporter === 'tap' ? makeChalk(0) : chalkFor());
    });

  program
    .command('verify')
    .description('replay scenarios on the running kernel and compare every step with the emulator; ends with "N agree, N differ, N skipped"')
    .argument('<path...>', 'scenario files, or directories of them')
    .option('--json', 'print both sides of every step as JSON')
    .option('--setup-hugetlb <n>', 'raise the 2 MiB hugetlb pool by N pages for the run (root; restored afterwards)')
    .option('--setup-swap <size>', 'add a swap file of SIZE (e.g. 256M) for the run (root; removed afterwards)')
    .option('--setup-thp', "set the THP mode to the scenarios' system.thp for the run (root; restored afterwards)")
    .option('--setup-read-ahead', "set read_ahead_kb of /var/tmp's disk to the scenarios' system.read_ahead_kb for the run (root; restored afterwards)")
    .action(async (paths: string[], opts) => {
      exit.code = await verifyCommand(paths, opts, io, opts.json ? makeChalk(0) : chalkFor());
    });

  program
    .command('export-c')
    .description('write a standalone C program that performs the scenario on a real kernel and prints the same JSON as run --json')
    .argument('<file>', 'scenario file')
    .action((file: string) => {
      io.out(exportC(loadScenarioFile(file)).replace(/\n$/, ''));
    });

  program
    .command('record')
    .description("run scenarios on this machine's kernel and write its answers into their expect blocks (comments are kept)")
    .argument('<file...>', 'scenario files to update in place')
    .option('--setup-hugetlb <n>', 'raise the 2 MiB hugetlb pool by N pages for the run (root; restored afterwards)')
    .option('--setup-swap <size>', 'add a swap file of SIZE (e.g. 256M) for the run (root; removed afterwards)')
    .option('--setup-thp', "set the THP mode to the scenarios' system.thp for the run (root; restored afterwards)")
    .option('--setup-read-ahead', "set read_ahead_kb of /var/tmp's disk to the scenarios' system.read_ahead_kb for the run (root; restored afterwards)")
    .action(async (files: string[], opts) => {
      exit.code = await recordCommand(files, opts, io);
    });

  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const exit = { code: EXIT_OK };
  const program = buildProgram(io, exit);
  try {
    await program.parseAsync(argv);
    return exit.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed.
      return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (e instanceof InputError) {
      io.err(e.message);
      return EXIT_USAGE;
    }
    if (e instanceof EnvironmentError) {
      io.err(`pagemap-scan: ${e.message}`);
      return EXIT_ENVIRONMENT;
    }
    io.err(`pagemap-scan: internal error: ${e instanceof Error ? e.message : String(e)}`);
    io.err('please report it with the scenario that triggered it');
    return 70;
  }
}
