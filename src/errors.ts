// Errors that are about the user's input or environment, never a kernel result (an errno is a
// result). Each carries the exit code the CLI uses; rendering is the CLI's job.

export const EXIT_OK = 0;
/** An expectation or a comparison with the real kernel failed. */
export const EXIT_MISMATCH = 1;
/** Bad input or usage: a scenario file, an argument. */
export const EXIT_USAGE = 2;
/** The environment cannot run it: no kernel support, no compiler, no permission. */
export const EXIT_ENVIRONMENT = 3;

/** Where in a file: 1-based line and column. */
export interface Location {
  file: string;
  line?: number;
  col?: number;
}

/** A located input error: `file:line:col: path: message`. */
export class InputError extends Error {
  readonly exitCode = EXIT_USAGE;
  constructor(
    readonly location: Location,
    /** The offending key, e.g. `steps[3].mmap.size` or `mmap.size`. */
    readonly path: string | undefined,
    readonly detail: string,
  ) {
    super(InputError.format(location, path, detail));
  }

  static format(location: Location, path: string | undefined, detail: string): string {
    let at = location.file;
    if (location.line !== undefined) at += `:${location.line}`;
    if (location.line !== undefined && location.col !== undefined) at += `:${location.col}`;
    return path ? `${at}: ${path}: ${detail}` : `${at}: ${detail}`;
  }
}

/** The machine cannot do what was asked (no compiler, no userfaultfd, ...). */
export class EnvironmentError extends Error {
  readonly exitCode = EXIT_ENVIRONMENT;
}

/** A step needs semantics the emulator does not model yet: said plainly instead of guessed. */
export class NotModelled extends Error {}

/**
 * A step whose cost would grow with its pages, not its runs, past a bound (touches with a stride
 * above a page): refused as bad input, at its step, rather than run for minutes.
 */
export class StepTooLarge extends Error {}
