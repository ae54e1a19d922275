// Placeholder until the demo lands (issue 6); replaced in the same session.
export async function demoCommand(_args: string[], _opts: { prometheus: boolean; once: boolean; dir?: string | undefined }): Promise<number> {
  process.stderr.write('pg-keeper demo: not available in this build\n');
  return 1;
}
