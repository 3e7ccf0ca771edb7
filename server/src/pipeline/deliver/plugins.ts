// The plugin registry: the built-in plugins plus those named in CAIRN_PLUGINS, loaded and validated
// once at start, then passed to whoever needs them (the destination directory, the admin API).
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type PluginDefinition, validatePlugin } from '@cairn/plugin-api';
import emailSmtp from '@cairn/plugin-email-smtp';
import segmentForward from '@cairn/plugin-segment-forward';
import slack from '@cairn/plugin-slack';
import smsHttp from '@cairn/plugin-sms-http';
import webhook from '@cairn/plugin-webhook';

/** The plugins this server can deliver with, by name. */
export interface PluginRegistry {
  get(name: string): Readonly<PluginDefinition> | undefined;
  /** Every plugin, built-ins first, then in the order CAIRN_PLUGINS names them. */
  list(): readonly Readonly<PluginDefinition>[];
  names(): string[];
}

/** The plugins every server has. */
export const BUILTIN_PLUGINS: readonly unknown[] = [webhook, emailSmtp, slack, smsHttp, segmentForward];

/** A plugin that cannot be loaded: its message is one line naming the package and the problem. */
export class PluginLoadError extends Error {
  override name = 'PluginLoadError';
}

/** A plugin and where it came from (a package name, a path, "built-in", "injected"), for messages. */
export interface PluginSource {
  plugin: unknown;
  from: string;
}

/**
 * Builds a registry from plugins already in memory: each is checked with `validatePlugin` (shape and
 * a supported `apiVersion`) and a second plugin of a name already taken is refused.
 *
 * @example
 * const plugins = createPluginRegistry(BUILTIN_PLUGINS.map((plugin) => ({ plugin, from: 'built-in' })));
 * plugins.get('webhook');
 */
export function createPluginRegistry(sources: Iterable<PluginSource>): PluginRegistry {
  const byName = new Map<string, { plugin: Readonly<PluginDefinition>; from: string }>();
  for (const { plugin, from } of sources) {
    let valid: Readonly<PluginDefinition>;
    try {
      valid = validatePlugin(plugin);
    } catch (err) {
      throw new PluginLoadError(`CAIRN_PLUGINS: ${from}: ${(err as Error).message}`);
    }
    const taken = byName.get(valid.name);
    if (taken) {
      throw new PluginLoadError(
        `CAIRN_PLUGINS: ${from}: a plugin named "${valid.name}" is already installed (${taken.from}); names must be unique`,
      );
    }
    byName.set(valid.name, { plugin: valid, from });
  }
  const list = Object.freeze([...byName.values()].map((p) => p.plugin));
  return {
    get: (name) => byName.get(name)?.plugin,
    list: () => list,
    names: () => [...byName.keys()],
  };
}

/** The built-ins alone (for callers not handed the server's registry; it cannot know other plugins). */
export const BUILTIN_REGISTRY: PluginRegistry = createPluginRegistry(
  BUILTIN_PLUGINS.map((plugin) => ({ plugin, from: 'built-in' })),
);

/** What {@link loadPlugins} loads besides the built-ins. */
export interface PluginOptions {
  /** CAIRN_PLUGINS: package names or paths. */
  packages: readonly string[];
  /** CAIRN_PLUGINS_DIR: where package names are looked up (default: the working directory). */
  dir?: string | undefined;
  /** Plugins given in code (tests, embedders), after the built-ins and before the packages. */
  extra?: readonly unknown[];
}

/**
 * The registry of a starting server: the built-ins, `extra`, then each CAIRN_PLUGINS entry imported
 * (see {@link resolvePluginEntry}) and validated. The first problem stops the start with a
 * {@link PluginLoadError} naming the entry and the problem.
 *
 * @example
 * const plugins = await loadPlugins({ packages: config.plugins.packages, dir: config.plugins.dir });
 */
export async function loadPlugins(options: PluginOptions): Promise<PluginRegistry> {
  const dir = resolve(options.dir ?? process.cwd());
  const sources: PluginSource[] = [
    ...BUILTIN_PLUGINS.map((plugin) => ({ plugin, from: 'built-in' })),
    ...(options.extra ?? []).map((plugin) => ({ plugin, from: 'injected' })),
  ];
  for (const entry of options.packages) {
    sources.push({ plugin: await importPlugin(entry, dir), from: entry });
  }
  return createPluginRegistry(sources);
}

/** The peer dependencies the server provides to plugins: one contract and one zod in the process. */
export const SHARED_PEERS: readonly string[] = ['@cairn/plugin-api', 'zod'];

/**
 * Makes a plugin package's own imports of its peer dependencies that the server provides
 * ({@link SHARED_PEERS}, those it lists in peerDependencies) resolve to the server's copies, wherever the
 * package is installed. npm installs peers beside a package in a directory of its own; without this the
 * plugin would run on a second @cairn/plugin-api and zod (and, under the monorepo's `@cairn/source`
 * condition, a published @cairn/plugin-api would point at sources its tarball does not hold). Only the
 * package's own files are redirected, not its dependencies'. Needs `module.registerHooks` (Node >=
 * 22.15); on older Nodes the plugin's own copies are used.
 */
function sharePeers(packageDir: string, peers: readonly string[]): void {
  const shared = peers.filter((name) => SHARED_PEERS.includes(name));
  if (!shared.length || typeof nodeModule.registerHooks !== 'function') return;
  const prefix = pathToFileURL(packageDir + sep).href;
  const host = import.meta.url;
  nodeModule.registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL;
      const own = parent?.startsWith(prefix) && !parent.slice(prefix.length).includes('/node_modules/');
      const peer = shared.some((name) => specifier === name || specifier.startsWith(`${name}/`));
      return nextResolve(specifier, own && peer ? { ...context, parentURL: host } : context);
    },
  });
}

/** Imports a CAIRN_PLUGINS entry and returns its plugin (the default export). */
async function importPlugin(entry: string, dir: string): Promise<unknown> {
  let file: string;
  try {
    file = resolvePluginEntry(entry, dir);
  } catch (err) {
    throw new PluginLoadError(`CAIRN_PLUGINS: ${entry}: ${(err as Error).message}`);
  }
  const pkg = packageOf(file);
  if (pkg) sharePeers(pkg.dir, Object.keys(pkg.peerDependencies ?? {}));
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    const reason = String((err as Error)?.message ?? err).split('\n')[0];
    throw new PluginLoadError(`CAIRN_PLUGINS: ${entry}: could not be imported (${file}): ${reason}`);
  }
  // A CommonJS build's `exports.default` arrives as default.default through import().
  let plugin = mod.default;
  if (plugin && typeof plugin === 'object' && !('name' in plugin) && 'default' in plugin) {
    plugin = (plugin as { default: unknown }).default;
  }
  if (plugin === undefined) {
    throw new PluginLoadError(`CAIRN_PLUGINS: ${entry}: has no default export (export default definePlugin({...}))`);
  }
  return plugin;
}

/**
 * The file a CAIRN_PLUGINS entry names. A path (absolute, or starting with `.`, relative to `dir`) is a
 * file, or a package directory; a package name (`@acme/cairn-x`) is looked up in the `node_modules`
 * folders of `dir` and its parents, as Node does. A package's entry is its `exports["."]` (conditions
 * `import`, `node`, `default`) or else `main` (else `index.js`).
 *
 * @example
 * resolvePluginEntry('@acme/cairn-x', '/srv/cairn'); // '/srv/cairn/node_modules/@acme/cairn-x/dist/index.js'
 */
export function resolvePluginEntry(entry: string, dir: string): string {
  const path = entry.startsWith('file:') ? new URL(entry).pathname : entry;
  if (isAbsolute(path) || path.startsWith('.')) {
    const target = resolve(dir, path);
    if (!existsSync(target)) throw new Error(`no such file or directory: ${target}`);
    return statSync(target).isDirectory() ? packageEntry(target) : target;
  }
  if (!/^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(entry)) {
    throw new Error('not a package name or a path');
  }
  for (let at = dir; ; at = dirname(at)) {
    const candidate = join(at, 'node_modules', entry);
    if (existsSync(join(candidate, 'package.json'))) return packageEntry(candidate);
    if (dirname(at) === at) break;
  }
  throw new Error(`package not found in node_modules from ${dir} up (npm install it there, or set CAIRN_PLUGINS_DIR)`);
}

// The package a file belongs to: the nearest package.json with a name, up from the file.
function packageOf(file: string): { dir: string; peerDependencies?: Record<string, string> } | undefined {
  for (let at = dirname(file); ; at = dirname(at)) {
    const manifest = join(at, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as {
        name?: string;
        peerDependencies?: Record<string, string>;
      };
      if (pkg.name) return { dir: at, ...(pkg.peerDependencies ? { peerDependencies: pkg.peerDependencies } : {}) };
    }
    if (dirname(at) === at || at.endsWith(`${sep}node_modules`)) return undefined;
  }
}

// The conditions an ESM import by Node matches, in the order a package's exports are tried.
const CONDITIONS = new Set(['import', 'node', 'default']);

function packageEntry(packageDir: string): string {
  const file = join(packageDir, 'package.json');
  if (!existsSync(file)) throw new Error(`${packageDir} has no package.json`);
  const pkg = JSON.parse(readFileSync(file, 'utf8')) as { exports?: unknown; main?: string };
  const root =
    pkg.exports && typeof pkg.exports === 'object' && !Array.isArray(pkg.exports) && '.' in pkg.exports
      ? (pkg.exports as Record<string, unknown>)['.']
      : pkg.exports && typeof pkg.exports === 'object' && Object.keys(pkg.exports).some((k) => k.startsWith('.'))
        ? undefined
        : pkg.exports;
  const target = pkg.exports === undefined ? (pkg.main ?? 'index.js') : pick(root);
  if (!target) throw new Error(`${file}: exports has no "." entry for import`);
  const resolved = resolve(packageDir, target);
  if (!existsSync(resolved)) throw new Error(`its entry ${resolved} does not exist (is the package built?)`);
  return resolved;
}

function pick(target: unknown): string | undefined {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const t of target) {
      const found = pick(t);
      if (found) return found;
    }
    return undefined;
  }
  if (target && typeof target === 'object') {
    for (const [condition, value] of Object.entries(target)) {
      if (!CONDITIONS.has(condition)) continue;
      const found = pick(value);
      if (found) return found;
    }
  }
  return undefined;
}
