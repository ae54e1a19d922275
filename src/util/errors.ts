// How an error becomes text a person reads: its message, and its code where the message
// lacks it. Messages in this project are built from host and port only, never from a
// conninfo, so this text is safe for logs and /status.

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** The errno code of a Node.js system error (ENOENT, EACCES, ...), if it is one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
