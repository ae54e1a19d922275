// A keeper's signal to its peer: a session it holds on the peer's server, whose
// application_name says what it has to tell (policy/types.ts, Signal). The peer's keeper
// reads it in pg_stat_activity at its next observation. The signal lasts as long as the
// session: when this keeper dies, so does what it said.

import type pg from 'pg';
import { PgSession } from './session.js';

const TIMEOUT_MS = 5_000;

export class SignalSession {
  private session: PgSession | null = null;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly label: string,
  ) {}

  /** Hold `text` (at most 63 characters, PostgreSQL's limit for a name). */
  async set(text: string): Promise<void> {
    if (text.length > 63) throw new Error(`a signal is at most 63 characters: ${text}`);
    this.session ??= new PgSession({ ...this.config, application_name: text }, this.label);
    await this.session.query("SELECT set_config('application_name', $1, false)", [text], TIMEOUT_MS);
  }

  /** Say nothing any more: the session goes, and its name with it. */
  close(): void {
    this.session?.close();
    this.session = null;
  }
}
