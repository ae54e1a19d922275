// One JavaScript file with pg-keeper and its dependencies, for places without node_modules:
// the single executable of the Debian package (scripts/package-deb.ts) and the container
// image (Dockerfile). CommonJS, because Node 20's single-executable applications run only
// that. `pg-keeper demo` is left out: it drives local PostgreSQL servers from a source
// checkout (npm start), and would drag its fixtures into every keeper.
//
//   tsx scripts/bundle.ts [OUT]      default build/pg-keeper.cjs

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';

const ROOT = path.join(import.meta.dirname, '..');
export const BUNDLE = path.join(ROOT, 'build', 'pg-keeper.cjs');

/** Replaces the demo's module by one that says where the demo is. */
const withoutDemo: Plugin = {
  name: 'without-demo',
  setup(b) {
    b.onResolve({ filter: /\/demo\/demo\.js$/ }, () => ({ path: 'demo', namespace: 'without-demo' }));
    b.onLoad({ filter: /.*/, namespace: 'without-demo' }, () => ({
      loader: 'ts',
      contents:
        'export async function demoCommand(): Promise<number> {\n' +
        "  process.stderr.write('pg-keeper: the demo is not part of this build; run it from a source checkout: npm start\\n');\n" +
        '  return 2;\n' +
        '}\n',
    }));
  },
};

export interface BundleOptions {
  /** JavaScript run before anything else in the bundle. */
  prelude?: string;
}

export interface Bundled {
  out: string;
  bytes: number;
  /** The npm packages inside, for the licence notice. */
  packages: { name: string; version: string; license: string }[];
}

export async function bundle(out = BUNDLE, opts: BundleOptions = {}): Promise<Bundled> {
  const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  // The bcrypt worker of basic authentication (src/http/auth.ts) runs from a string written
  // into the bundle: no second file to ship beside it, and a single executable can run it.
  const worker = await build({
    entryPoints: [path.join(ROOT, 'src', 'http', 'bcrypt-worker.ts')],
    bundle: true,
    write: false,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const workerCode = worker.outputFiles[0]?.text;
  if (!workerCode) throw new Error('bundle: the bcrypt worker came out empty');
  const result = await build({
    entryPoints: [path.join(ROOT, 'src', 'cli.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minifySyntax: true,
    // The licences of what is bundled, in a file beside it (OUT.LEGAL.txt), shipped with it.
    legalComments: 'external',
    // pg's native binding is optional and never loaded by pg-keeper.
    external: ['pg-native'],
    define: {
      PG_KEEPER_BUNDLED_VERSION: JSON.stringify(version),
      PG_KEEPER_BCRYPT_WORKER: JSON.stringify(workerCode),
      // CommonJS has no import.meta: a module that asks for its own URL gets the bundle's.
      'import.meta.url': 'PG_KEEPER_BUNDLE_URL',
      // Only the TypeScript sources ask (src/http/auth.ts, to run its worker under tsx).
      'import.meta.resolve': 'undefined',
    },
    banner: {
      js: [
        "var PG_KEEPER_BUNDLE_URL = require('node:url').pathToFileURL(__filename).href;",
        ...(opts.prelude ? [opts.prelude] : []),
      ].join('\n'),
    },
    plugins: [withoutDemo],
    metafile: true,
    logLevel: 'silent',
  });
  // A warning here is a bundle that may not run as the sources do: stop.
  const problems = [...result.errors, ...result.warnings];
  if (problems.length > 0) {
    const text = problems.map(
      (m) => `${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}`,
    );
    throw new Error(`bundle: esbuild reported:\n${text.join('\n')}`);
  }
  const dirs = new Set<string>();
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1]) dirs.add(path.resolve(m[1]));
  }
  const packages = [...dirs]
    .map((dir) => {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name: string;
        version: string;
        license?: string;
      };
      return { name: pkg.name, version: pkg.version, license: pkg.license ?? 'see its package' };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  return { out, bytes: result.metafile.outputs[path.relative(process.cwd(), out)]?.bytes ?? 0, packages };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const { out, bytes } = await bundle(process.argv[2] ? path.resolve(process.argv[2]) : BUNDLE);
  process.stdout.write(`bundle: ${path.relative(process.cwd(), out)} (${(bytes / 1024).toFixed(0)} kB)\n`);
}
