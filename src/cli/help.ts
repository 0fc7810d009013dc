// The "Examples:" section of a command's --help: command lines a user can copy (test/unit/
// docs.cli.test.ts parses each against the program, as it does the docs' command lines).
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}
