// Types of tools/programs.mjs (plain JavaScript, so that it runs on a fresh machine's Node before `npm ci`).

/** Who needs a program: group → what it is. */
export declare const GROUPS: Readonly<Record<string, string>>;
/** The groups `npm start` installs. */
export declare const QUICKSTART_GROUPS: readonly string[];

/** One external program. */
export interface Program {
  /** The Debian package that has it. */
  readonly package: string;
  /** Who runs it (keys of GROUPS). */
  readonly groups: readonly string[];
  /** A file that runs it where the code scan cannot see it (a shell script, a browser launch). */
  readonly via?: string;
  /** On the machine before anything runs (the README's premise); never installed by weft's scripts. */
  readonly prerequisite?: boolean;
}

export declare const PROGRAMS: Readonly<Record<string, Program>>;
/** Packages a group needs that hold no program it runs by name. */
export declare const EXTRA_PACKAGES: Readonly<Record<string, readonly string[]>>;

/** A program that is not on PATH. */
export interface MissingProgram {
  readonly program: string;
  readonly package: string;
  /** Where it is when it is installed but not on PATH. */
  readonly elsewhere?: string;
}

/** Where `name` is on PATH (what execa and spawn would run), or undefined. */
export declare function findProgram(name: string, path?: string): string | undefined;
/** The programs of these groups (every group when none is given), sorted. */
export declare function programsOf(groups?: readonly string[]): string[];
/** The Debian packages to install for these groups, sorted, without duplicates and without prerequisites. */
export declare function packagesOf(groups?: readonly string[]): string[];
/** The programs of these groups that are not on PATH. */
export declare function missingPrograms(groups?: readonly string[], path?: string): MissingProgram[];
/** One line naming each missing program and the apt-get command that installs them. */
export declare function describeMissing(missing: readonly MissingProgram[]): string;
