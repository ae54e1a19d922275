// `pg-keeper health`: exit 0 when a keeper's /health answers 200, 1 otherwise, saying why.
// The container image's HEALTHCHECK runs it: it speaks HTTPS and basic authentication when
// the keeper has a web_config_file, which a bare fetch() of /health cannot. Its options may
// come from the environment (PG_KEEPER_HEALTH_URL, _CACERT, _CERT, _KEY, _USER,
// _PASSWORD_FILE), which `docker run -e` sets where a HEALTHCHECK takes no arguments.

import { errorText } from '../util/errors.js';
import { keeperRequest, keeperUrl, type ClientOptions } from './client.js';

/** The options the environment gives, under those of the command line. */
export function healthOptionsFromEnv(
  env: NodeJS.ProcessEnv,
  given: ClientOptions & { url?: string | undefined },
): ClientOptions & { url: string } {
  const pick = (flag: string | undefined, name: string): string | undefined =>
    flag ?? (env[`PG_KEEPER_HEALTH_${name}`] || undefined);
  return {
    url: pick(given.url, 'URL') ?? 'http://127.0.0.1:9754/health',
    cacert: pick(given.cacert, 'CACERT'),
    cert: pick(given.cert, 'CERT'),
    key: pick(given.key, 'KEY'),
    user: pick(given.user, 'USER'),
    passwordFile: pick(given.passwordFile, 'PASSWORD_FILE'),
  };
}

export async function healthCommand(o: ClientOptions & { url: string }): Promise<number> {
  let url: URL;
  try {
    url = keeperUrl(o.url);
  } catch (err) {
    process.stderr.write(`pg-keeper: ${errorText(err)}\n`);
    return 2;
  }
  // A keeper's address (http://pg1:9754) asks /health; a URL with a path asks that path.
  const path = url.pathname === '/' ? '/health' : url.pathname;
  try {
    const r = await keeperRequest(url, path, o, 'GET', 2500);
    if (r.status === 200) return 0;
    process.stderr.write(`pg-keeper: ${new URL(path, url).href}: HTTP ${r.status} ${r.text.slice(0, 200)}\n`);
  } catch (err) {
    process.stderr.write(`pg-keeper: ${new URL(path, url).href}: ${errorText(err)}\n`);
  }
  return 1;
}
